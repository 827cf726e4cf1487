//! One census of the node's TCP sockets: counts by state, by port, and the accept queues of
//! listening sockets.
//!
//! Both socket sources (netlink `sock_diag` and `/proc/net/tcp{,6}`) produce the same flat list
//! of [`SocketEntry`] values; [`SocketCensus::from_entries`] turns that list into the counts the
//! SRE asks for. Sockets are grouped by the port that names the *service*, not by the ephemeral
//! end: a server-side socket is counted under its local port ([`PortSide::Local`]), a
//! client-side socket under its remote port ([`PortSide::Remote`]), so a TIME_WAIT storm of
//! short client connections towards `:8080` shows up under 8080.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use serde::Serialize;

use faultline_series::{PortSide, SocketState};

/// The address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 (`AF_INET`).
    Ipv4,
    /// IPv6 (`AF_INET6`), including IPv4-mapped addresses.
    Ipv6,
}

/// One TCP socket as a source reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEntry {
    /// IPv4 or IPv6.
    pub family: Family,
    /// The TCP state.
    pub state: SocketState,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified for listening sockets).
    pub remote: SocketAddr,
    /// For a listening socket: the accept-queue length. Otherwise: bytes not yet read.
    pub recv_queue: u32,
    /// For a listening socket: the backlog (`None` when the source cannot tell, as with
    /// `/proc/net/tcp`). Otherwise: bytes not yet acknowledged by the peer.
    pub send_queue: Option<u32>,
    /// The socket inode (0 for TIME_WAIT and request sockets), used to find its process.
    pub inode: u64,
}

impl SocketEntry {
    /// An unspecified address of the given family, for building entries.
    pub fn unspecified(family: Family) -> SocketAddr {
        match family {
            Family::Ipv4 => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            Family::Ipv6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        }
    }
}

/// The key sockets are grouped by: a service port and the side of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PortKey {
    /// The service port.
    pub port: u16,
    /// Whether the node serves on that port ([`PortSide::Local`], the listening socket
    /// included) or calls it ([`PortSide::Remote`]).
    pub side: PortSide,
}

impl Hash for PortKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32((u32::from(self.port) << 1) | self.side as u32);
    }
}

/// A map keyed by [`PortKey`] with a multiplicative hash: the census does one lookup per
/// socket, and SipHash's DoS resistance buys nothing for keys that are 17-bit integers.
pub type PortMap<V> = HashMap<PortKey, V, BuildHasherDefault<PortKeyHasher>>;

/// The hasher of [`PortMap`] (Fibonacci hashing of the key's integer).
#[derive(Debug, Default, Clone, Copy)]
pub struct PortKeyHasher(u64);

impl Hasher for PortKeyHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = self.0.rotate_left(32) ^ u64::from(n);
    }
}

/// A set of ports as a 65,536-bit bitmap.
struct PortSet(Vec<u64>);

impl PortSet {
    fn new() -> PortSet {
        PortSet(vec![0; 1024])
    }

    fn insert(&mut self, port: u16) {
        self.0[usize::from(port >> 6)] |= 1 << (port & 63);
    }

    fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }

    fn clear(&mut self) {
        self.0.fill(0);
    }
}

/// Socket counts indexed by [`SocketState`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts(pub [u32; 11]);

impl StateCounts {
    /// The count for one state.
    pub fn get(&self, state: SocketState) -> u32 {
        self.0[state.index()]
    }

    /// Adds one socket in `state`.
    pub fn add(&mut self, state: SocketState) {
        let slot = &mut self.0[state.index()];
        *slot = slot.saturating_add(1);
    }

    /// Adds every count of `other`.
    pub fn add_all(&mut self, other: &StateCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The number of sockets in any state.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&n| u64::from(n)).sum()
    }

    /// The non-zero counts, by state.
    pub fn non_zero(&self) -> impl Iterator<Item = (SocketState, u32)> + '_ {
        SocketState::ALL
            .into_iter()
            .map(|s| (s, self.get(s)))
            .filter(|&(_, n)| n > 0)
    }
}

/// One listening socket and its accept queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenQueue {
    /// The address it listens on.
    pub local: SocketAddr,
    /// Connections waiting for `accept()`; at the backlog, new ones are dropped (ListenOverflows).
    pub queue: u32,
    /// The configured backlog; `None` when the source cannot tell (`/proc/net/tcp`).
    pub backlog: Option<u32>,
}

/// Where a census came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketSource {
    /// Netlink `sock_diag`, what `ss` uses.
    Netlink,
    /// `/proc/net/tcp` and `/proc/net/tcp6`, the fallback.
    ProcNet,
}

/// The TCP sockets of the node at one moment, counted.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketCensus {
    /// Which source produced it.
    pub source: SocketSource,
    /// All sockets by state.
    pub by_state: StateCounts,
    /// IPv4 sockets by state.
    pub ipv4: StateCounts,
    /// IPv6 sockets by state.
    pub ipv6: StateCounts,
    /// Sockets by service port and side, then by state. Every port seen is here; the store
    /// keeps only the top N of them.
    pub by_port: PortMap<StateCounts>,
    /// Every listening socket with its accept queue, ordered by port then address.
    pub listeners: Vec<ListenQueue>,
}

/// The ephemeral port range used when the node's own cannot be read (the Linux default).
pub const DEFAULT_EPHEMERAL_PORTS: RangeInclusive<u16> = 32768..=60999;

/// How long a port that stopped listening is still taken for a service port: between one and
/// two of these. A server that closes its listener (a restart, a crash, a test server) leaves
/// its connections behind in CLOSE_WAIT, FIN_WAIT or TIME_WAIT, and they must stay under the
/// service's port instead of scattering over the clients' ephemeral ports; TIME_WAIT lasts
/// 60 s on Linux, a CLOSE_WAIT leak as long as the process, and five to ten minutes covers
/// the restarts an SRE looks at without keeping a port that has become a client port.
const LISTENER_MEMORY: Duration = Duration::from_secs(300);

/// Decides which end of a connection is the service, from what the node listens on now and
/// listened on recently, the ephemeral port range, and how many sockets share each port.
///
/// It keeps state between censuses (the ports that listened recently) and its scratch tables,
/// so one classifier belongs to one socket reader.
pub struct PortClassifier {
    ephemeral: RangeInclusive<u16>,
    /// Ports with a listener in this census.
    listening: PortSet,
    /// Ports seen listening in the current and the previous memory generation.
    remembered: [PortSet; 2],
    generation_started: Instant,
    /// Per port: how many connected sockets use it as their local port (saturating).
    local_uses: Vec<u16>,
    /// Per port: how many connected sockets use it as their remote port (saturating).
    remote_uses: Vec<u16>,
}

impl std::fmt::Debug for PortClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortClassifier")
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

impl PortClassifier {
    /// A classifier that remembers no listener yet.
    pub fn new(ephemeral: RangeInclusive<u16>) -> PortClassifier {
        PortClassifier {
            ephemeral,
            listening: PortSet::new(),
            remembered: [PortSet::new(), PortSet::new()],
            generation_started: Instant::now(),
            local_uses: vec![0; 1 << 16],
            remote_uses: vec![0; 1 << 16],
        }
    }

    /// Learns the listeners and port sharing of one census's sockets.
    fn learn(&mut self, entries: &[SocketEntry]) {
        if self.generation_started.elapsed() >= LISTENER_MEMORY {
            self.remembered.swap(0, 1);
            self.remembered[0].clear();
            self.generation_started = Instant::now();
        }
        self.listening.clear();
        self.local_uses.fill(0);
        self.remote_uses.fill(0);
        for e in entries {
            if e.state == SocketState::Listen {
                self.listening.insert(e.local.port());
                self.remembered[0].insert(e.local.port());
            } else {
                let local = &mut self.local_uses[usize::from(e.local.port())];
                *local = local.saturating_add(1);
                let remote = &mut self.remote_uses[usize::from(e.remote.port())];
                *remote = remote.saturating_add(1);
            }
        }
    }

    /// How surely `port` is a service port here: 2 listening now, 1 listened recently, 0 not.
    fn listen_level(&self, port: u16) -> u8 {
        if self.listening.contains(port) {
            2
        } else if self.remembered[0].contains(port) || self.remembered[1].contains(port) {
            1
        } else {
            0
        }
    }

    /// The group a socket is counted in, by the first rule that tells:
    /// 1. a listening socket is inbound;
    /// 2. the end whose port listens here more surely (now beats recently beats never) is the
    ///    service: a local port that listens makes the socket inbound, a remote one outbound
    ///    (a client of a local service). Ports are compared by number only, so a client's
    ///    ephemeral port that another address listens on (SO_REUSEADDR lets a listener take a
    ///    port a TIME_WAIT socket holds) loses to a remote port that listens now;
    /// 3. when neither end listens: exactly one end in the ephemeral range is the client;
    /// 4. otherwise the end whose port more sockets share is the service (a server's port is
    ///    shared by all its connections, a client's ephemeral port by one);
    /// 5. otherwise outbound, under the remote port.
    fn key(&self, entry: &SocketEntry) -> PortKey {
        let local = entry.local.port();
        let remote = entry.remote.port();
        let shared = || self.local_uses[usize::from(local)] > self.remote_uses[usize::from(remote)];
        let inbound = if entry.state == SocketState::Listen {
            true
        } else {
            match (self.listen_level(local), self.listen_level(remote)) {
                (l, r) if l > r => true,
                (l, r) if r > l => false,
                (0, _) => match (
                    self.ephemeral.contains(&local),
                    self.ephemeral.contains(&remote),
                ) {
                    (false, true) => true,
                    (true, false) => false,
                    _ => shared(),
                },
                _ => shared(),
            }
        };
        if inbound {
            PortKey {
                port: local,
                side: PortSide::Local,
            }
        } else {
            PortKey {
                port: remote,
                side: PortSide::Remote,
            }
        }
    }
}

impl SocketCensus {
    /// Counts `entries` with a classifier that remembers no earlier listener (see
    /// [`SocketCensus::count`]).
    pub fn from_entries(
        source: SocketSource,
        entries: &[SocketEntry],
        ephemeral: &RangeInclusive<u16>,
    ) -> SocketCensus {
        SocketCensus::count(source, entries, &mut PortClassifier::new(ephemeral.clone()))
    }

    /// Counts `entries`; `ports` decides the port group of each socket (see
    /// [`PortClassifier`]) and learns this census's listeners for the next ones.
    pub fn count(
        source: SocketSource,
        entries: &[SocketEntry],
        ports: &mut PortClassifier,
    ) -> SocketCensus {
        ports.learn(entries);
        let mut census = SocketCensus {
            source,
            by_state: StateCounts::default(),
            ipv4: StateCounts::default(),
            ipv6: StateCounts::default(),
            by_port: PortMap::default(),
            listeners: Vec::new(),
        };
        for entry in entries {
            census.by_state.add(entry.state);
            match entry.family {
                Family::Ipv4 => census.ipv4.add(entry.state),
                Family::Ipv6 => census.ipv6.add(entry.state),
            }
            census
                .by_port
                .entry(ports.key(entry))
                .or_default()
                .add(entry.state);
            if entry.state == SocketState::Listen {
                census.listeners.push(ListenQueue {
                    local: entry.local,
                    queue: entry.recv_queue,
                    backlog: entry.send_queue,
                });
            }
        }
        census
            .listeners
            .sort_by_key(|l| (l.local.port(), l.local.ip()));
        census
    }

    /// The counts of one port group (all zero when absent).
    pub fn port(&self, port: u16, side: PortSide) -> StateCounts {
        self.by_port
            .get(&PortKey { port, side })
            .copied()
            .unwrap_or_default()
    }
}

/// An IPv4 socket between 10.0.0.1:`local` and 10.0.0.2:`remote`, for the counters' tests.
#[cfg(test)]
pub(crate) fn entry(state: SocketState, local: u16, remote: u16) -> SocketEntry {
    SocketEntry {
        family: Family::Ipv4,
        state,
        local: SocketAddr::from(([10, 0, 0, 1], local)),
        remote: SocketAddr::from(([10, 0, 0, 2], remote)),
        recv_queue: 0,
        send_queue: Some(0),
        inode: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_wait_storm_towards_a_port_is_counted_under_that_port() {
        let mut entries = vec![entry(SocketState::Listen, 8080, 0)];
        for p in 40000..40100 {
            entries.push(entry(SocketState::TimeWait, p, 8080));
        }
        entries.push(entry(SocketState::Established, 8080, 40500));
        entries.push(entry(SocketState::Established, 40500, 8080));
        // A client of a remote service with no local listener.
        entries.push(entry(SocketState::CloseWait, 50000, 5432));
        let census =
            SocketCensus::from_entries(SocketSource::ProcNet, &entries, &DEFAULT_EPHEMERAL_PORTS);
        let out = census.port(8080, PortSide::Remote);
        assert_eq!(out.get(SocketState::TimeWait), 100);
        assert_eq!(out.get(SocketState::Established), 1);
        let inb = census.port(8080, PortSide::Local);
        assert_eq!(inb.get(SocketState::Listen), 1);
        assert_eq!(inb.get(SocketState::Established), 1);
        assert_eq!(
            census
                .port(5432, PortSide::Remote)
                .get(SocketState::CloseWait),
            1
        );
        assert_eq!(census.by_state.total(), entries.len() as u64);
        assert_eq!(census.listeners.len(), 1);
    }

    #[test]
    fn a_server_that_stopped_listening_keeps_its_connections_under_its_port() {
        // A server on an ephemeral-range port, with connections from two clients.
        let listener = entry(SocketState::Listen, 34639, 0);
        let conns = [
            entry(SocketState::Established, 34639, 45001),
            entry(SocketState::Established, 45001, 34639),
        ];
        let mut ports = PortClassifier::new(DEFAULT_EPHEMERAL_PORTS);
        let mut first = vec![listener];
        first.extend(conns);
        SocketCensus::count(SocketSource::Netlink, &first, &mut ports);
        // The listener is gone; its side of the connection is now closing.
        let after = [
            entry(SocketState::CloseWait, 45001, 34639),
            entry(SocketState::FinWait2, 34639, 45001),
        ];
        let census = SocketCensus::count(SocketSource::Netlink, &after, &mut ports);
        let inbound = census.port(34639, PortSide::Local);
        assert_eq!(inbound.get(SocketState::FinWait2), 1);
        let outbound = census.port(34639, PortSide::Remote);
        assert_eq!(outbound.get(SocketState::CloseWait), 1);
        assert_eq!(census.by_port.len(), 2, "{:?}", census.by_port);
        // A classifier that never saw the listener cannot tell one connection's two ends apart.
        let fresh =
            SocketCensus::from_entries(SocketSource::Netlink, &after, &DEFAULT_EPHEMERAL_PORTS);
        assert_eq!(fresh.port(45001, PortSide::Remote).total(), 1);
    }

    #[test]
    fn without_a_listener_the_port_many_sockets_share_is_the_service() {
        let mut entries = Vec::new();
        // Server-side TIME_WAITs of a server (ephemeral-range port) that has stopped listening.
        for client in 45000..45050 {
            entries.push(entry(SocketState::TimeWait, 34639, client));
        }
        // A client with 30 connections to a remote service on an ephemeral-range port.
        for local in 50000..50030 {
            entries.push(entry(SocketState::Established, local, 40000));
        }
        let census =
            SocketCensus::from_entries(SocketSource::Netlink, &entries, &DEFAULT_EPHEMERAL_PORTS);
        assert_eq!(
            census
                .port(34639, PortSide::Local)
                .get(SocketState::TimeWait),
            50
        );
        assert_eq!(
            census
                .port(40000, PortSide::Remote)
                .get(SocketState::Established),
            30
        );
        assert_eq!(census.by_port.len(), 2, "{:?}", census.by_port);
    }

    #[test]
    fn a_client_port_another_address_listens_on_stays_with_the_service_it_calls() {
        // 50 client TIME_WAITs towards a listener on 34000; one of them holds local port
        // 41000, which a listener on another address also took (SO_REUSEADDR), with its own
        // two connections.
        let mut entries = vec![
            entry(SocketState::Listen, 34000, 0),
            entry(SocketState::Listen, 41000, 0),
            entry(SocketState::Established, 41000, 52000),
            entry(SocketState::Established, 41000, 52001),
        ];
        for local in 40990..41040 {
            entries.push(entry(SocketState::TimeWait, local, 34000));
        }
        let census =
            SocketCensus::from_entries(SocketSource::Netlink, &entries, &DEFAULT_EPHEMERAL_PORTS);
        assert_eq!(
            census
                .port(34000, PortSide::Remote)
                .get(SocketState::TimeWait),
            50
        );
        assert_eq!(
            census
                .port(41000, PortSide::Local)
                .get(SocketState::Established),
            2
        );
    }
}
