//! The kernel's audit records and process events as they happen: the audit netlink group that
//! gets every record (none of the kernel log's rate limit), and the process connector (forks
//! and execs), so that a record's pid can be placed even after its process has exited.
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd},
};

/// A netlink socket that could not be opened, with what it was for.
#[derive(Debug, thiserror::Error)]
#[error("opening {what}: {source}")]
pub struct NetlinkError {
    pub what: String,
    pub source: io::Error,
}

type Result<T, E = NetlinkError> = std::result::Result<T, E>;

/// `AUDIT_NLGRP_READLOG`: the read-only multicast group of audit records.
const AUDIT_NLGRP_READLOG: u32 = 1;
/// `CN_IDX_PROC`, `CN_VAL_PROC`: the process connector's id.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `PROC_CN_MCAST_LISTEN`.
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const NLMSG_HDRLEN: usize = 16;
/// `struct cn_msg` without its data.
const CN_MSG_LEN: usize = 20;
/// `struct proc_event` up to its union.
const PROC_EVENT_HDRLEN: usize = 16;
/// The receive buffer asked for: records arrive in bursts.
const RCVBUF: libc::c_int = 8 << 20;

/// A process event that matters for placing pids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcEvent {
    /// A new process (not a thread): `child` forked by `parent` (thread group ids).
    Fork { parent: u32, child: u32 },
    /// Process `pid` (thread group id) executed a program.
    Exec { pid: u32 },
}

/// A netlink socket bound to one multicast group.
#[derive(Debug)]
struct Socket {
    fd: OwnedFd,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Socket {
    fn open(kind: libc::c_int, protocol: libc::c_int, groups: u32, what: &str) -> Result<Self> {
        let err = |e: io::Error| NetlinkError {
            what: what.to_string(),
            source: e,
        };
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                protocol,
            )
        };
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a socket this function just opened and owns nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = RCVBUF;
        let len = std::mem::size_of_val(&size) as libc::socklen_t;
        // SAFETY: setsockopt(2) on our socket with a pointer to a live c_int and its size.
        // SO_RCVBUFFORCE (root) goes past rmem_max; SO_RCVBUF is the fallback.
        let forced = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                len,
            )
        };
        if forced != 0 {
            // SAFETY: as above.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&raw const size).cast(),
                    len,
                )
            };
        }
        // SAFETY: an all-zero sockaddr_nl is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = groups;
        // SAFETY: bind(2) on our socket with a pointer to a live sockaddr_nl and its size.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(Socket { fd })
    }

    /// One datagram into `buf`; `WouldBlock` when there is none.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: recv(2) into a live buffer of the length given.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// The netlink messages in one datagram: (type, payload).
fn messages(data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= data.len() {
        let len = u32_at(data, at) as usize;
        let kind = u16::from_ne_bytes([data[at + 4], data[at + 5]]);
        if len < NLMSG_HDRLEN {
            break;
        }
        let end = (at + len).min(data.len());
        out.push((kind, &data[at + NLMSG_HDRLEN..end]));
        // Messages are 4-byte aligned.
        at += (len + 3) & !3;
    }
    out
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The audit records the kernel emits, every one, as it emits them (needs CAP_AUDIT_READ).
#[derive(Debug)]
pub struct AuditRecords {
    socket: Socket,
    buf: Vec<u8>,
}

impl AsRawFd for AuditRecords {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AuditRecords {
    pub fn open() -> Result<Self> {
        Ok(AuditRecords {
            socket: Socket::open(
                libc::SOCK_RAW,
                libc::NETLINK_AUDIT,
                AUDIT_NLGRP_READLOG,
                "the kernel's audit records (NETLINK_AUDIT, needs CAP_AUDIT_READ)",
            )?,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The records waiting, each as a kernel log line would carry it (`type=1326 audit(…): …`).
    /// `Err(WouldBlock)` when none; `Err` with `ENOBUFS` when records were dropped because the
    /// socket's buffer was full.
    pub fn recv(&mut self) -> io::Result<Vec<String>> {
        let n = self.socket.recv(&mut self.buf)?;
        Ok(messages(&self.buf[..n])
            .into_iter()
            .map(|(kind, payload)| {
                let end = payload
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(payload.len());
                format!("type={kind} {}", String::from_utf8_lossy(&payload[..end]))
            })
            .collect())
    }
}

/// Process events (forks and execs of every process on the machine; needs CAP_NET_ADMIN).
#[derive(Debug)]
pub struct ProcEvents {
    socket: Socket,
    buf: Vec<u8>,
}

impl AsRawFd for ProcEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl ProcEvents {
    pub fn open() -> Result<Self> {
        let what = "process events (NETLINK_CONNECTOR, needs CAP_NET_ADMIN)";
        let socket = Socket::open(libc::SOCK_DGRAM, libc::NETLINK_CONNECTOR, CN_IDX_PROC, what)?;
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + CN_MSG_LEN + 4);
        let total = (NLMSG_HDRLEN + CN_MSG_LEN + 4) as u32;
        msg.extend(total.to_ne_bytes());
        msg.extend((libc::NLMSG_DONE as u16).to_ne_bytes());
        msg.extend(0u16.to_ne_bytes()); // flags
        msg.extend(0u32.to_ne_bytes()); // seq
        msg.extend(0u32.to_ne_bytes()); // pid: the kernel's
        msg.extend(CN_IDX_PROC.to_ne_bytes());
        msg.extend(CN_VAL_PROC.to_ne_bytes());
        msg.extend(0u32.to_ne_bytes()); // seq
        msg.extend(0u32.to_ne_bytes()); // ack
        msg.extend(4u16.to_ne_bytes()); // len
        msg.extend(0u16.to_ne_bytes()); // flags
        msg.extend(PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: send(2) of a live buffer of the length given on our socket.
        let sent = unsafe { libc::send(socket.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(NetlinkError {
                what: what.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(ProcEvents {
            socket,
            buf: vec![0; 16 * 1024],
        })
    }

    /// The events waiting; `Err(WouldBlock)` when none, `ENOBUFS` when some were dropped.
    pub fn recv(&mut self) -> io::Result<Vec<ProcEvent>> {
        let n = self.socket.recv(&mut self.buf)?;
        Ok(messages(&self.buf[..n])
            .into_iter()
            .filter_map(|(_, payload)| event(payload))
            .collect())
    }
}

/// A `struct cn_msg` carrying a `struct proc_event`.
fn event(payload: &[u8]) -> Option<ProcEvent> {
    let ev = payload.get(CN_MSG_LEN..)?;
    let what = u32_at(ev, 0);
    let data = ev.get(PROC_EVENT_HDRLEN..)?;
    match what {
        PROC_EVENT_FORK if data.len() >= 16 => {
            let (parent, child_pid, child) = (u32_at(data, 4), u32_at(data, 8), u32_at(data, 12));
            // A new thread shares its group id: not a new process.
            (child_pid == child).then_some(ProcEvent::Fork { parent, child })
        }
        PROC_EVENT_EXEC if data.len() >= 8 => Some(ProcEvent::Exec {
            pid: u32_at(data, 4),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HDRLEN + payload.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(payload);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    fn proc_event(what: u32, fields: &[u32]) -> Vec<u8> {
        let mut p = vec![0u8; CN_MSG_LEN];
        p.extend(what.to_ne_bytes());
        p.extend([0u8; 12]); // cpu, timestamp
        for f in fields {
            p.extend(f.to_ne_bytes());
        }
        p
    }

    #[test]
    fn datagrams_split_into_messages() {
        let mut d = nlmsg(1326, b"audit(1.000:1): pid=1 arch=c000003e syscall=83\0");
        d.extend(nlmsg(1300, b"audit(1.000:2): x"));
        let m = messages(&d);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, 1326);
        assert_eq!(m[1].1, b"audit(1.000:2): x");
        assert!(messages(&d[..10]).is_empty());
    }

    #[test]
    fn fork_and_exec_events() {
        let fork = proc_event(PROC_EVENT_FORK, &[10, 10, 11, 11]);
        assert_eq!(
            event(&fork),
            Some(ProcEvent::Fork {
                parent: 10,
                child: 11
            })
        );
        let thread = proc_event(PROC_EVENT_FORK, &[10, 10, 12, 10]);
        assert_eq!(event(&thread), None);
        let exec = proc_event(PROC_EVENT_EXEC, &[11, 11]);
        assert_eq!(event(&exec), Some(ProcEvent::Exec { pid: 11 }));
        assert_eq!(event(&exec[..CN_MSG_LEN + 4]), None);
    }
}
