//! Finding a caller's millisecond connection without walking the kernel's socket table.
//!
//! A client opening a connection per call on loopback holds each one for a millisecond or
//! two. The looks (see [`super::outgoing`]) catch it holding one in its descriptors, but
//! only a record of the kernel says where that socket goes, and a dump of the node's
//! connections walks the kernel's whole established hash (262,144 buckets here, every
//! namespace's sockets: 3–5 ms) — longer than the socket lives, and paced by its cost to
//! one every second or two. So naming an untraced 1 ms caller waited for a dump that happened
//! to reach the socket's bucket in time: 1.5–14 s over 12 release runs (`twstorm2-notes`).
//!
//! This asks the kernel for the socket directly instead, by its four-tuple (`sock_diag`'s
//! exact look-up: one hash probe, microseconds). Two facts make the tuple guessable:
//! - the kernel reports every TCP socket it frees to whoever listens on `sock_diag`'s
//!   "destroy" multicast groups (Linux 4.4+), with its addresses and ports: while the looks
//!   run, the finder listens and keeps, per followed listener port, the latest connection to
//!   it that closed — the caller's address and ephemeral port;
//! - the kernel picks a connection's ephemeral port from a sequence kept per destination
//!   (RFC 6056's table of perturbations, `__inet_hash_connect`, Linux 5.12+): each
//!   connection to the same address and port takes a port 2–16 above the one before (a small
//!   random step in kernels since 2022), more when ports in between are taken. So the
//!   connection open now is a few ports above the latest closed one, whichever process opened
//!   it. (Older kernels keep one sequence for every destination: connections elsewhere in
//!   between move it, and a probe finds less.)
//!
//! A look that sees a new socket asks for the connections to the followed port from the
//! next [`PROBE_SPAN`] ports above the latest; the answer carries the socket's inode, so a
//! placement is exact (the inode the look saw), never a guess: a wrong guess finds nothing,
//! and the look falls back to a dump as before. Measured with a prototype (own netns, 1 ms
//! calls 25 a second, looks every 20 ms): 66 of 68 new sockets caught were placed by a probe
//! of 16 ports, 37 of 39 with 32.
//!
//! Cost: an exact look-up is a hash probe and one answer; [`PROBE_SPAN`] of them are sent in
//! one write. Listening to the destroy groups makes the kernel copy a record of every TCP
//! socket freed in the namespace to the agent (a small work item each); the finder is open
//! only while the looks run (a suspected storm) and reads at most [`MAX_CLOSES_PER_READ`]
//! records per look. Without the groups (a kernel that refuses them) nothing is found and
//! the dumps place as before.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use faultline_series::SocketState;

use super::error::CounterError;
use super::netlink::{
    decode_diag_msg, encode_exact_request, for_each_message, recv, send_to_kernel,
    SOCK_DIAG_BY_FAMILY,
};
use super::sockets::SocketEntry;

/// How many client ports above the latest connection to a followed port one look asks for.
/// Between the latest close a look read and the connection open now, a per-call client at
/// 25 calls a second opened one or two: the prototype's 16 placed 66 of 68 sockets; 32 leaves
/// room for a few callers at once.
pub const PROBE_SPAN: u16 = 32;

/// Most close records read per look: on a node closing thousands of connections a second
/// the latest of a followed port may be missed (the dumps still place), the look stays cheap.
pub const MAX_CLOSES_PER_READ: usize = 4096;

/// `SKNLGRP_INET_TCP_DESTROY` and `SKNLGRP_INET6_TCP_DESTROY` (linux/sock_diag.h) as a
/// multicast group mask.
const TCP_DESTROY_GROUPS: u32 = (1 << 0) | (1 << 2);

/// How long a look waits for the answers to its look-ups: they come at once, or the socket's
/// buffer overflowed and they never will.
const LOOKUP_TIMEOUT_US: libc::suseconds_t = 50_000;

/// Listens to the kernel's closed connections and looks up the ones open now (see the
/// module docs).
#[derive(Debug)]
pub struct ConnectionFinder {
    closes: OwnedFd,
    lookups: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    ephemeral: RangeInclusive<u16>,
    /// Per followed listener port: the latest connection to it (caller's end, listener's
    /// end), closed or found open.
    latest: BTreeMap<u16, (SocketAddr, SocketAddr)>,
    /// Close records read since the finder opened.
    pub closes_read: u64,
    /// Exact look-ups asked since the finder opened.
    pub lookups_asked: u64,
}

impl ConnectionFinder {
    /// Opens the two netlink sockets: one joined to the destroy groups (non-blocking), one for
    /// look-ups. `ephemeral` is the node's `ip_local_port_range`, where client ports wrap.
    pub fn open(ephemeral: RangeInclusive<u16>) -> Result<ConnectionFinder, CounterError> {
        let closes = diag_socket(libc::SOCK_NONBLOCK)?;
        // SAFETY: sockaddr_nl is plain old data; all zeros is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = TCP_DESTROY_GROUPS;
        // SAFETY: `addr` is a valid sockaddr_nl and the length passed matches it.
        let rc = unsafe {
            libc::bind(
                closes.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(CounterError::Netlink(io::Error::last_os_error()));
        }
        let lookups = diag_socket(0)?;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: LOOKUP_TIMEOUT_US,
        };
        // SAFETY: `timeout` is a valid timeval and the length passed matches it.
        let rc = unsafe {
            libc::setsockopt(
                lookups.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(CounterError::Netlink(io::Error::last_os_error()));
        }
        Ok(ConnectionFinder {
            closes,
            lookups,
            buf: vec![0; 64 * 1024],
            seq: 0,
            ephemeral,
            latest: BTreeMap::new(),
            closes_read: 0,
            lookups_asked: 0,
        })
    }

    /// Appends to `out` the open connections to each of `ports` (listening ports of the node)
    /// from the [`PROBE_SPAN`] client ports above the latest connection to it, after reading
    /// the closes reported since the last call. Returns whether it asked anything (a port
    /// with no close seen yet has nothing to count from).
    pub fn find(&mut self, ports: &BTreeSet<u16>, out: &mut Vec<SocketEntry>) -> bool {
        self.read_closes(ports);
        let mut wanted = Vec::new();
        for port in ports {
            if let Some((client, server)) = self.latest.get(port) {
                let mut local = client.port();
                for _ in 0..PROBE_SPAN {
                    local = self.next_port(local);
                    wanted.push((SocketAddr::new(client.ip(), local), *server));
                }
            }
        }
        if wanted.is_empty() {
            return false;
        }
        let start = out.len();
        if self.look_up(&wanted, out).is_err() {
            out.truncate(start);
            return true;
        }
        // The connection found open is the newest of its port: the next look counts from it.
        for e in &out[start..] {
            if matches!(e.state, SocketState::Established | SocketState::SynSent) {
                let newer = self.latest.get(&e.remote.port()).is_none_or(|(c, _)| {
                    self.distance(c.port(), e.local.port()) <= u32::from(PROBE_SPAN)
                });
                if newer {
                    self.latest.insert(e.remote.port(), (e.local, e.remote));
                }
            }
        }
        true
    }

    /// The client port after `port` in the ephemeral range (wrapping at its top).
    fn next_port(&self, port: u16) -> u16 {
        let (low, high) = (*self.ephemeral.start(), *self.ephemeral.end());
        if port >= high || port < low {
            low
        } else {
            port + 1
        }
    }

    /// How many ports above `from` is `to`, wrapping in the ephemeral range.
    fn distance(&self, from: u16, to: u16) -> u32 {
        let (low, high) = (
            u32::from(*self.ephemeral.start()),
            u32::from(*self.ephemeral.end()),
        );
        let size = high - low + 1;
        let (from, to) = (u32::from(from), u32::from(to));
        if to >= from {
            to - from
        } else {
            to + size - from
        }
    }

    /// Reads the close records waiting (at most [`MAX_CLOSES_PER_READ`]) and keeps, for each
    /// of `ports`, the latest connection to it.
    fn read_closes(&mut self, ports: &BTreeSet<u16>) {
        let mut read = 0;
        while read < MAX_CLOSES_PER_READ {
            let len = match recv(&self.closes, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(len) => len,
                // Records were dropped while the buffer was full: read on.
                Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(_) => break,
            };
            if len == 0 {
                break;
            }
            let latest = &mut self.latest;
            let _ = for_each_message(&self.buf[..len], |kind, _, payload| {
                if kind != SOCK_DIAG_BY_FAMILY {
                    return;
                }
                read += 1;
                if let Some(e) = decode_diag_msg(payload) {
                    let (local, remote) = (unmapped(e.local), unmapped(e.remote));
                    if ports.contains(&remote.port()) && !ports.contains(&local.port()) {
                        latest.insert(remote.port(), (local, remote));
                    } else if ports.contains(&local.port()) && !ports.contains(&remote.port()) {
                        // The listener's end: the caller's port is its remote one.
                        latest.insert(local.port(), (remote, local));
                    }
                }
            });
        }
        self.closes_read += read as u64;
        self.latest.retain(|port, _| ports.contains(port));
    }

    /// Sends one exact look-up per (local, remote) pair in one write and appends what the
    /// kernel found to `out`.
    fn look_up(
        &mut self,
        wanted: &[(SocketAddr, SocketAddr)],
        out: &mut Vec<SocketEntry>,
    ) -> Result<(), CounterError> {
        let first = self.seq.wrapping_add(1);
        let mut request = Vec::new();
        for (local, remote) in wanted {
            self.seq = self.seq.wrapping_add(1);
            request.extend(encode_exact_request(self.seq, *local, *remote));
        }
        self.lookups_asked += wanted.len() as u64;
        send_to_kernel(&self.lookups, &request).map_err(CounterError::Netlink)?;
        // Each look-up gets exactly one answer: the socket, or an error (none there).
        let mut answered = 0;
        while answered < wanted.len() {
            let len = recv(&self.lookups, &mut self.buf, 0).map_err(CounterError::Netlink)?;
            for_each_message(&self.buf[..len], |kind, seq, payload| {
                if seq.wrapping_sub(first) as usize >= wanted.len() {
                    return; // a late answer to an earlier look
                }
                answered += 1;
                if kind == SOCK_DIAG_BY_FAMILY {
                    if let Some(e) = decode_diag_msg(payload) {
                        out.push(e);
                    }
                }
            })?;
        }
        Ok(())
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack listener's end of an IPv4 connection) as
/// the IPv4 address the caller's own socket has.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// A `NETLINK_SOCK_DIAG` socket with extra `flags` (`SOCK_NONBLOCK` or 0).
fn diag_socket(flags: libc::c_int) -> Result<OwnedFd, CounterError> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | flags,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(CounterError::Netlink(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::MetadataExt;

    fn inode(stream: &TcpStream) -> u64 {
        let fd = stream.as_raw_fd();
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .expect("fd")
            .ino()
    }

    /// A caller's connection is found by the ports the kernel hands out after the one of the
    /// latest connection that closed, with its inode: what places a socket that lives too
    /// short for a dump to reach it.
    #[test]
    fn a_connection_open_now_is_found_from_the_latest_that_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ports = BTreeSet::from([port]);
        let mut finder = ConnectionFinder::open(32768..=60999).expect("sock_diag groups");
        let mut out = Vec::new();
        assert!(!finder.find(&ports, &mut out), "no close seen yet");

        // One call on its own connection, closed at both ends.
        let first = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let first_port = first.local_addr().expect("addr").port();
        drop(listener.accept().expect("accept"));
        drop(first);
        // The next call's connection, open while the look asks.
        let open = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let found = loop {
            out.clear();
            // The close records come from a kernel work item: a moment after the close.
            if finder.find(&ports, &mut out) {
                break out.iter().find(|e| e.inode == inode(&open)).copied();
            }
            assert!(std::time::Instant::now() < deadline, "no close reported");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let found = found.unwrap_or_else(|| {
            panic!(
                "connection from :{} not found (first from :{first_port}): {out:?}",
                open.local_addr().expect("addr").port()
            )
        });
        assert_eq!(found.state, SocketState::Established);
        assert_eq!(found.remote.port(), port);
        assert_eq!(found.local, open.local_addr().expect("addr"));
        assert!(finder.closes_read >= 1);
        assert_eq!(finder.lookups_asked, u64::from(PROBE_SPAN));
    }

    #[test]
    fn client_ports_wrap_in_the_ephemeral_range() {
        let finder = ConnectionFinder::open(32768..=60999).expect("sock_diag");
        assert_eq!(finder.next_port(60999), 32768);
        assert_eq!(finder.next_port(40000), 40001);
        assert_eq!(finder.distance(60990, 32770), 12);
        assert_eq!(finder.distance(40000, 40016), 16);
    }
}
