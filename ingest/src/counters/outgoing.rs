//! Outgoing connections per process target: which of the node's listeners each watched
//! process connects to, which of those connections it keeps and which it opens and closes
//! again — the continuous form of running `ss -tnp '( dport = :PORT )'` again and again.
//!
//! A TIME-WAIT storm on a listener's port says that connections to it are opened and closed
//! at a high rate, not by whom: TIME-WAIT sockets belong to no process. Spans name a caller
//! only when exactly one traced service calls the port. This names the caller from its
//! sockets: a pooled client holds the same few connections read after read; a client that
//! opens a connection per call is seen holding a different one each time it is caught, and
//! none of them again.
//!
//! Execution model. The tracker reads the descriptor links of the process targets' processes
//! (`/proc/PID/fd/N` → `socket:[INODE]`) on the census thread, at two moments:
//! - [`OutgoingTracker::observe`], after each fresh census: every socket held is placed from
//!   the census (an ESTABLISHED or SYN-SENT connection to a port the node listens on, or
//!   anything else);
//! - [`OutgoingTracker::look`], between censuses while the census thread suspects a storm
//!   (see the sampler): the descriptors alone, and only when a process holds a socket the last
//!   read did not see, a probe that looks the connections to the storm's port up by the
//!   ports the kernel hands out next ([`super::closes`]: microseconds, so the socket is
//!   still open), then, for what is still unplaced, one dump of the node's ESTABLISHED and
//!   SYN-SENT sockets (those from or to the storm's port only, while the looks follow one:
//!   the kernel filters them, so a socket of the target's to elsewhere stays unplaced unless
//!   a census places it).
//!
//! A socket held at one read and gone at the next was closed between them; one of a
//! connection to a listener is counted for that listener's port. A connection on loopback
//! lives a millisecond or two, so a census every second or few catches almost none of a
//! per-call client's; looks every few tens of milliseconds catch a few a second (and see
//! them close), which is what makes the caller nameable within seconds of a storm's start.
//!
//! Cost: a descriptor link is ~2.5 µs of CPU to read (`restart-notes`: 2.3–2.6 µs per link
//! measured with a 500- and a 2,000-socket holder); a look at a few small clients is tens of
//! microseconds, plus a dump (the kernel's walk of its established hash) when a new socket
//! appears. The sampler books it all against `socket_cpu_budget_percent`.
//!
//! Bounds: at most [`MAX_TARGET_FDS`] links read per process and read, at most
//! [`MAX_PORTS_PER_TARGET`] ports told per target, at most [`MAX_CLOSED_KEPT`] closed sockets
//! remembered per target (beyond it the counts are lower bounds, and say so), and nothing
//! older than [`WINDOW`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use faultline_series::SocketState;
use serde::Serialize;

use super::sockets::SocketEntry;

/// Most descriptor links read per process and read: a service with more descriptors than
/// this is leaking them, and its counts here become a lower bound.
pub const MAX_TARGET_FDS: usize = 8192;

/// Most remote ports told per target (the ports with the most connections first).
pub const MAX_PORTS_PER_TARGET: usize = 32;

/// Most closed sockets remembered per target over [`WINDOW`]: a client opening 60
/// connections a second, every one of them seen.
pub const MAX_CLOSED_KEPT: usize = 4096;

/// How far back closed connections and reads are counted.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Most local ports told per target and port (the held ones, then the latest closed).
pub const MAX_LOCAL_PORTS_TOLD: usize = 5;

/// One process target's connections to one of the node's listening ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingPort {
    /// The listening port the connections go to.
    pub port: u16,
    /// Connections (ESTABLISHED or SYN-SENT) the target held to it at the latest read.
    pub held: u32,
    /// Of those, how many the census before the latest did not see.
    pub new: u32,
    /// Connections to it the target was seen holding and then no longer held, over the last
    /// [`WINDOW`]: each was closed (at least this many when `distinct_capped`).
    pub closed_1m: u32,
    /// Of those, how many were seen at one read only (gone by the next): connections that
    /// lived less than the gap between two reads, as a client opening one per call makes.
    pub short_lived_1m: u32,
    /// Distinct connections to it over the last [`WINDOW`]: held now or closed.
    pub distinct_1m: u32,
    /// Whether the closed count reached its bound ([`MAX_CLOSED_KEPT`]).
    pub distinct_capped: bool,
    /// The local ports of the connections held now, then of the latest closed ones (at most
    /// [`MAX_LOCAL_PORTS_TOLD`]): what `ss -tnp` shows beside the process.
    pub local_ports: Vec<u16>,
}

/// What one target holds and has closed, as of its latest read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutgoingConnections {
    /// When its descriptors were last read (Unix ms).
    pub counted_unix_ms: i64,
    /// Per remote port (at most [`MAX_PORTS_PER_TARGET`]), the most connections first.
    pub ports: Vec<OutgoingPort>,
    /// Descriptor links read at the latest read (its cost, in links).
    pub links_read: u32,
    /// Reads of its descriptors over the last [`WINDOW`] (censuses and looks): the chances
    /// it had to be caught holding a connection.
    pub reads_1m: u32,
    /// Sockets it opened and closed between two reads (seen at one read only), over the last
    /// [`WINDOW`], that no census or dump placed while they were open (of any kind: TCP,
    /// UDP, unix): the looks catch more than the dumps, kept within the CPU budget, place.
    pub unplaced_short_lived_1m: u32,
    /// Sockets it opened and closed between two reads, over the last [`WINDOW`], placed as
    /// no connection to a listener of the node (an accepted connection, a connection
    /// elsewhere): when it has any, its unplaced ones may be such too.
    pub elsewhere_short_lived_1m: u32,
}

/// Where a socket held by a target goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Not found by any census or dump while it was held.
    Unknown,
    /// A TCP socket that is not a connection to one of the node's listeners (a listener, an
    /// accepted connection, a connection elsewhere).
    Elsewhere,
    /// A connection to the node's listener on `port`, from `local_port`.
    To { port: u16, local_port: u16 },
}

/// A socket held at the latest read.
#[derive(Debug, Clone, Copy)]
struct Held {
    place: Place,
    first_seen: Instant,
    /// Held at the target's first read: opened before anyone watched.
    before_watch: bool,
    /// Reads that saw it.
    reads: u32,
}

/// A socket seen held and then gone.
#[derive(Debug, Clone, Copy)]
struct Closed {
    place: Place,
    at: Instant,
    /// Seen at one read only.
    short: bool,
}

/// One target's sockets between reads.
#[derive(Debug, Default)]
struct Target {
    pids: Vec<u32>,
    held: BTreeMap<u64, Held>,
    closed: VecDeque<Closed>,
    capped: bool,
    reads: VecDeque<Instant>,
    links_read: u32,
    read_unix_ms: i64,
    /// When the census before the latest one read it (for [`OutgoingPort::new`]).
    census_before: Option<Instant>,
    last_census: Option<Instant>,
}

/// The state kept between reads (see the module docs).
#[derive(Debug, Default)]
pub struct OutgoingTracker {
    targets: BTreeMap<String, Target>,
    /// The ports the node listened on at the latest census.
    listening: BTreeSet<u16>,
}

/// What a look found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookOutcome {
    /// Sockets held that the previous read had not seen.
    pub new_sockets: usize,
    /// Whether a dump was asked for to place them (and answered).
    pub dumped: bool,
    /// How many of the new sockets the probe and the dump placed (found still open).
    pub placed: usize,
    /// Whether a probe looked the targets' new connections up directly (see
    /// [`super::closes`]).
    pub probed: bool,
    /// How many of the new sockets the probe placed.
    pub probe_placed: usize,
}

impl OutgoingTracker {
    /// An empty tracker.
    pub fn new() -> OutgoingTracker {
        OutgoingTracker::default()
    }

    /// After a census: reads the descriptors of each target's processes under `proc_root`
    /// (`targets`: target name, its process ids) and places their sockets among the census
    /// `entries`, at `now` (`now_unix_ms` on the wall clock). A target with no process keeps
    /// no state. Blocking.
    pub fn observe(
        &mut self,
        proc_root: &Path,
        entries: &[SocketEntry],
        targets: &[(String, Vec<u32>)],
        now: Instant,
        now_unix_ms: i64,
    ) {
        self.listening = entries
            .iter()
            .filter(|e| e.state == SocketState::Listen)
            .map(|e| e.local.port())
            .collect();
        self.read(proc_root, targets, now, now_unix_ms);
        let places = self.places(entries);
        for target in self.targets.values_mut() {
            // A socket the census does not list is not TCP, or was opened after it: it stays
            // where it was placed.
            for (inode, held) in &mut target.held {
                if let Some(place) = places.get(inode) {
                    held.place = *place;
                }
            }
            target.census_before = target.last_census;
            target.last_census = Some(now);
        }
    }

    /// Between censuses: reads the descriptors of each target's processes, and when one holds
    /// a socket the previous read did not see, places the new ones: first with `probe` (which
    /// fills its argument with the connections it could look up directly, see
    /// [`super::closes`], and says whether it asked), then, for what is still unplaced, with
    /// `dump` (which fills its argument with the node's ESTABLISHED and SYN-SENT sockets and
    /// says whether it could). Blocking.
    pub fn look(
        &mut self,
        proc_root: &Path,
        targets: &[(String, Vec<u32>)],
        now: Instant,
        now_unix_ms: i64,
        probe: impl FnOnce(&mut Vec<SocketEntry>) -> bool,
        dump: impl FnOnce(&mut Vec<SocketEntry>) -> bool,
    ) -> LookOutcome {
        let (new_sockets, worth_placing) = self.read(proc_root, targets, now, now_unix_ms);
        let mut outcome = LookOutcome {
            new_sockets,
            ..LookOutcome::default()
        };
        if worth_placing == 0 {
            return outcome;
        }
        let mut entries = Vec::new();
        if probe(&mut entries) {
            outcome.probed = true;
            outcome.probe_placed = self.place(&entries);
            outcome.placed += outcome.probe_placed;
        }
        if self.unplaced_new(now) == 0 {
            return outcome;
        }
        entries.clear();
        if !dump(&mut entries) {
            return outcome;
        }
        outcome.dumped = true;
        outcome.placed += self.place(&entries);
        outcome
    }

    /// Places the unplaced sockets held at the latest read that `entries` list; returns how
    /// many.
    fn place(&mut self, entries: &[SocketEntry]) -> usize {
        let places = self.places(entries);
        let mut placed = 0;
        for target in self.targets.values_mut() {
            for (inode, held) in &mut target.held {
                if held.place == Place::Unknown {
                    if let Some(place) = places.get(inode) {
                        held.place = *place;
                        placed += 1;
                    }
                }
            }
        }
        placed
    }

    /// Sockets first seen at the read of `now` that nothing placed yet.
    fn unplaced_new(&self, now: Instant) -> usize {
        self.targets
            .values()
            .flat_map(|t| t.held.values())
            .filter(|h| h.place == Place::Unknown && h.first_seen == now)
            .count()
    }

    /// The most short-lived connections to one of `ports` that one target was seen opening
    /// and closing (placed there) over the [`WINDOW`] before `now`.
    pub fn most_short_lived_to(&self, ports: &BTreeSet<u16>, now: Instant) -> u32 {
        self.targets
            .values()
            .map(|t| {
                let n = t
                    .closed
                    .iter()
                    .rev()
                    .take_while(|c| now.saturating_duration_since(c.at) <= WINDOW)
                    .filter(|c| {
                        c.short
                            && matches!(c.place, Place::To { port, .. } if ports.contains(&port))
                    })
                    .count();
                u32::try_from(n).unwrap_or(u32::MAX)
            })
            .max()
            .unwrap_or(0)
    }

    /// Each target's connections as of its latest read, at `now`.
    pub fn connections(&self, now: Instant) -> BTreeMap<String, OutgoingConnections> {
        self.targets
            .iter()
            .map(|(name, t)| (name.clone(), t.connections(now)))
            .collect()
    }

    /// Where each socket of `entries` goes (by inode).
    fn places(&self, entries: &[SocketEntry]) -> BTreeMap<u64, Place> {
        entries
            .iter()
            .filter(|e| e.inode != 0)
            .map(|e| {
                let outgoing = matches!(e.state, SocketState::Established | SocketState::SynSent)
                    && self.listening.contains(&e.remote.port());
                let place = if outgoing {
                    Place::To {
                        port: e.remote.port(),
                        local_port: e.local.port(),
                    }
                } else {
                    Place::Elsewhere
                };
                (e.inode, place)
            })
            .collect()
    }

    /// Reads every target's descriptors: what is gone is closed, what is new is held (not
    /// placed yet). Returns how many sockets are new, and how many of them are worth a dump:
    /// those of targets whose short-lived sockets were not all placed elsewhere. A server's
    /// accepted side of a per-call client's connections is new at as many looks as the
    /// client's own, and outlives it by the client's FIN: on the opener runs the dumps went to
    /// the server's sockets and placed none of the client's in a minute.
    fn read(
        &mut self,
        proc_root: &Path,
        targets: &[(String, Vec<u32>)],
        now: Instant,
        now_unix_ms: i64,
    ) -> (usize, usize) {
        let live: BTreeSet<&str> = targets
            .iter()
            .filter(|(_, pids)| !pids.is_empty())
            .map(|(name, _)| name.as_str())
            .collect();
        self.targets.retain(|name, _| live.contains(name.as_str()));
        let (mut new_sockets, mut worth_placing) = (0, 0);
        for (name, pids) in targets.iter().filter(|(_, pids)| !pids.is_empty()) {
            let target = self.targets.entry(name.clone()).or_default();
            if target.pids != *pids {
                // A restarted process: the old one's sockets were not closed one by one.
                *target = Target {
                    pids: pids.clone(),
                    ..Target::default()
                };
            }
            let first_read = target.reads.is_empty();
            let mut links_read = 0u32;
            let mut now_held = BTreeSet::new();
            for pid in pids {
                now_held.extend(socket_inodes(proc_root, *pid, &mut links_read));
            }
            let gone: Vec<u64> = target
                .held
                .keys()
                .filter(|i| !now_held.contains(i))
                .copied()
                .collect();
            for inode in gone {
                if let Some(held) = target.held.remove(&inode) {
                    if !held.before_watch {
                        target.note_closed(held.place, now, held.reads <= 1);
                    }
                }
            }
            let before = new_sockets;
            for inode in now_held {
                let held = target.held.entry(inode).or_insert_with(|| {
                    new_sockets += 1;
                    Held {
                        place: Place::Unknown,
                        first_seen: now,
                        before_watch: first_read,
                        reads: 0,
                    }
                });
                held.reads = held.reads.saturating_add(1);
            }
            if !target.places_only_elsewhere(now) {
                worth_placing += new_sockets - before;
            }
            target.links_read = links_read;
            target.read_unix_ms = now_unix_ms;
            target.reads.push_back(now);
            target.forget(now);
        }
        (new_sockets, worth_placing)
    }
}

impl Target {
    fn note_closed(&mut self, place: Place, at: Instant, short: bool) {
        if self.closed.len() >= MAX_CLOSED_KEPT {
            self.closed.pop_front();
            self.capped = true;
        }
        self.closed.push_back(Closed { place, at, short });
    }

    /// Whether every short-lived socket of the last [`WINDOW`] that was placed went
    /// elsewhere than to a listener of the node (at least one did).
    fn places_only_elsewhere(&self, now: Instant) -> bool {
        let recent = self
            .closed
            .iter()
            .filter(|c| c.short && now.saturating_duration_since(c.at) <= WINDOW);
        let (mut elsewhere, mut to) = (0, 0);
        for c in recent {
            match c.place {
                Place::Elsewhere => elsewhere += 1,
                Place::To { .. } => to += 1,
                Place::Unknown => {}
            }
        }
        elsewhere > 0 && to == 0
    }

    /// Forgets what is older than [`WINDOW`].
    fn forget(&mut self, now: Instant) {
        let old = |at: &Instant| now.saturating_duration_since(*at) > WINDOW;
        while self.closed.front().is_some_and(|c| old(&c.at)) {
            self.closed.pop_front();
        }
        while self.reads.front().is_some_and(old) {
            self.reads.pop_front();
        }
        if self.closed.is_empty() {
            self.capped = false;
        }
    }

    fn connections(&self, now: Instant) -> OutgoingConnections {
        #[derive(Default)]
        struct PortCount {
            held: u32,
            new: u32,
            closed: u32,
            short: u32,
            local_ports: Vec<u16>,
        }
        let recent = |at: &Instant| now.saturating_duration_since(*at) <= WINDOW;
        let mut by_port: BTreeMap<u16, PortCount> = BTreeMap::new();
        for held in self.held.values() {
            if let Place::To { port, local_port } = held.place {
                let c = by_port.entry(port).or_default();
                c.held += 1;
                if self.census_before.is_none_or(|at| held.first_seen > at) {
                    c.new += 1;
                }
                c.local_ports.push(local_port);
            }
        }
        let (mut unplaced, mut elsewhere) = (0u32, 0u32);
        for closed in self.closed.iter().rev().filter(|c| recent(&c.at)) {
            match closed.place {
                Place::To { port, local_port } => {
                    let c = by_port.entry(port).or_default();
                    c.closed += 1;
                    c.short += u32::from(closed.short);
                    c.local_ports.push(local_port);
                }
                Place::Unknown => unplaced += u32::from(closed.short),
                Place::Elsewhere => elsewhere += u32::from(closed.short),
            }
        }
        let mut ports: Vec<OutgoingPort> = by_port
            .into_iter()
            .map(|(port, mut c)| {
                c.local_ports.truncate(MAX_LOCAL_PORTS_TOLD);
                OutgoingPort {
                    port,
                    held: c.held,
                    new: c.new,
                    closed_1m: c.closed,
                    short_lived_1m: c.short,
                    distinct_1m: c.held + c.closed,
                    distinct_capped: self.capped,
                    local_ports: c.local_ports,
                }
            })
            .collect();
        ports.sort_by(|a, b| (b.distinct_1m, b.held, a.port).cmp(&(a.distinct_1m, a.held, b.port)));
        ports.truncate(MAX_PORTS_PER_TARGET);
        OutgoingConnections {
            counted_unix_ms: self.read_unix_ms,
            ports,
            links_read: self.links_read,
            reads_1m: u32::try_from(self.reads.iter().filter(|at| recent(at)).count())
                .unwrap_or(u32::MAX),
            unplaced_short_lived_1m: unplaced,
            elsewhere_short_lived_1m: elsewhere,
        }
    }
}

/// The socket inodes among the descriptors of process `pid` (at most [`MAX_TARGET_FDS`]
/// links read), adding the links read to `read`. A process that exited or hides its
/// descriptors has none.
fn socket_inodes(proc_root: &Path, pid: u32, read: &mut u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .take(MAX_TARGET_FDS)
        .filter_map(|fd| {
            *read = read.saturating_add(1);
            let target = std::fs::read_link(fd.path()).ok()?;
            super::owners::socket_inode(target.to_str()?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::sockets::Family;
    use std::net::SocketAddr;

    fn entry(state: SocketState, local: u16, remote: u16, inode: u64) -> SocketEntry {
        SocketEntry {
            family: Family::Ipv4,
            state,
            local: SocketAddr::from(([127, 0, 0, 1], local)),
            remote: if remote == 0 {
                SocketEntry::unspecified(Family::Ipv4)
            } else {
                SocketAddr::from(([127, 0, 0, 1], remote))
            },
            recv_queue: 0,
            send_queue: Some(0),
            inode,
        }
    }

    /// Writes a procfs tree under `root`: each (pid, socket inodes) as `PID/fd/N` links, after
    /// a non-socket fd; what was there before is replaced.
    fn procfs(root: &Path, processes: &[(u32, &[u64])]) {
        for (pid, inodes) in processes {
            let dir = root.join(pid.to_string()).join("fd");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("fd dir");
            std::os::unix::fs::symlink("/dev/null", dir.join("0")).expect("fd 0");
            for (i, inode) in inodes.iter().enumerate() {
                let link = dir.join((i + 3).to_string());
                std::os::unix::fs::symlink(format!("socket:[{inode}]"), link).expect("socket link");
            }
        }
    }

    /// The node listens on 8080 (orders) and 9090 (stock). gateway (pid 10) keeps two pooled
    /// connections to 8080 (inodes 101, 102) and one to 443, where nobody on the node listens
    /// (103); checkout (pid 20) connects to 9090 from local port 50000 + its inode. stock
    /// (pid 30) holds the accepted side of checkout's connections.
    fn census(checkout: &[u64]) -> Vec<SocketEntry> {
        let mut e = vec![
            entry(SocketState::Listen, 8080, 0, 1),
            entry(SocketState::Listen, 9090, 0, 2),
            entry(SocketState::Established, 40001, 8080, 101),
            entry(SocketState::Established, 40002, 8080, 102),
            entry(SocketState::Established, 40003, 443, 103),
            // A TIME-WAIT socket has no inode and no process.
            entry(SocketState::TimeWait, 40009, 9090, 0),
        ];
        for inode in checkout {
            let local = 50_000 + *inode as u16;
            e.push(entry(SocketState::Established, local, 9090, *inode));
            e.push(entry(SocketState::Established, 9090, local, inode + 1000));
        }
        e
    }

    fn targets() -> Vec<(String, Vec<u32>)> {
        vec![
            ("gateway".to_owned(), vec![10]),
            ("checkout".to_owned(), vec![20]),
            ("stock".to_owned(), vec![30]),
            ("stopped".to_owned(), vec![]),
        ]
    }

    fn port(c: &BTreeMap<String, OutgoingConnections>, target: &str, port: u16) -> OutgoingPort {
        c[target]
            .ports
            .iter()
            .find(|p| p.port == port)
            .cloned()
            .unwrap_or_else(|| panic!("{target} → :{port} in {c:#?}"))
    }

    #[test]
    fn censuses_tell_a_pool_from_a_client_opening_a_connection_per_call() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut tracker = OutgoingTracker::new();
        let t0 = Instant::now();
        // Each census catches checkout holding one new connection, never the same one twice.
        for (k, inode) in [201u64, 202, 203, 204, 205].iter().enumerate() {
            procfs(
                root.path(),
                &[
                    (10, &[101, 102, 103]),
                    (20, &[*inode]),
                    (30, &[1, inode + 1000]),
                ],
            );
            let now = t0 + Duration::from_secs(k as u64);
            tracker.observe(root.path(), &census(&[*inode]), &targets(), now, 1_000);
        }
        let c = tracker.connections(t0 + Duration::from_secs(4));
        assert!(!c.contains_key("stopped"));
        let gateway = port(&c, "gateway", 8080);
        assert_eq!(
            (
                gateway.held,
                gateway.new,
                gateway.closed_1m,
                gateway.distinct_1m
            ),
            (2, 0, 0, 2)
        );
        assert_eq!(gateway.local_ports, vec![40001, 40002]);
        assert_eq!(
            c["gateway"].ports.len(),
            1,
            "443 is no listener of the node"
        );
        // The first census's connection was there before anyone watched: not counted closed.
        let checkout = port(&c, "checkout", 9090);
        assert_eq!(
            (
                checkout.held,
                checkout.new,
                checkout.closed_1m,
                checkout.short_lived_1m
            ),
            (1, 1, 3, 3)
        );
        assert_eq!(checkout.local_ports, vec![50205, 50204, 50203, 50202]);
        assert_eq!(c["checkout"].reads_1m, 5);
        // Links read: one socket and /dev/null.
        assert_eq!(c["checkout"].links_read, 2);
        // stock's accepted sides are no outgoing connections.
        assert!(c["stock"].ports.is_empty(), "{c:#?}");

        // A minute later the closed ones are forgotten.
        procfs(root.path(), &[(20, &[])]);
        tracker.observe(
            root.path(),
            &census(&[]),
            &targets(),
            t0 + Duration::from_secs(70),
            2_000,
        );
        let later = tracker.connections(t0 + Duration::from_secs(70));
        let checkout = port(&later, "checkout", 9090);
        assert_eq!(
            (checkout.held, checkout.closed_1m),
            (0, 1),
            "only the one closed since the census before"
        );
    }

    #[test]
    fn looks_between_censuses_catch_and_place_connections_that_live_milliseconds() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut tracker = OutgoingTracker::new();
        let t0 = Instant::now();
        procfs(root.path(), &[(10, &[101, 102]), (20, &[]), (30, &[1])]);
        tracker.observe(root.path(), &census(&[]), &targets(), t0, 0);
        let mut dumps = 0;
        let mut look = |tracker: &mut OutgoingTracker, ms: u64, open: &[u64]| {
            procfs(root.path(), &[(10, &[101, 102]), (20, open), (30, &[1])]);
            let mut dumped = false;
            let outcome = tracker.look(
                root.path(),
                &targets(),
                t0 + Duration::from_millis(ms),
                0,
                |_| false,
                |out| {
                    dumped = true;
                    out.extend(census(open).into_iter().filter(|e| {
                        matches!(e.state, SocketState::Established | SocketState::SynSent)
                    }));
                    true
                },
            );
            dumps += usize::from(dumped);
            outcome
        };
        // Looks every 50 ms; checkout is caught with a connection open at 3 of them.
        let mut caught = 0;
        for k in 1..=40u64 {
            let open: Vec<u64> = if k % 10 == 0 { vec![300 + k] } else { vec![] };
            let outcome = look(&mut tracker, 50 * k, &open);
            assert_eq!(outcome.new_sockets, open.len(), "look {k}");
            assert_eq!(outcome.placed, open.len(), "look {k}: placed by its dump");
            caught += open.len();
        }
        assert_eq!(caught, 4);
        assert_eq!(dumps, 4, "a dump only when a socket is new");
        let c = tracker.connections(t0 + Duration::from_secs(2));
        let checkout = port(&c, "checkout", 9090);
        assert_eq!(
            (checkout.held, checkout.closed_1m, checkout.short_lived_1m),
            (1, 3, 3),
            "{c:#?}"
        );
        assert_eq!(c["checkout"].reads_1m, 41);
        let gateway = port(&c, "gateway", 8080);
        assert_eq!((gateway.held, gateway.closed_1m), (2, 0));
    }

    #[test]
    fn a_socket_gone_before_anything_placed_it_is_told_apart() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut tracker = OutgoingTracker::new();
        let t0 = Instant::now();
        let only_checkout = vec![("checkout".to_owned(), vec![20])];
        procfs(root.path(), &[(20, &[])]);
        tracker.observe(root.path(), &census(&[]), &only_checkout, t0, 0);
        procfs(root.path(), &[(20, &[777])]);
        // The dump finds it no longer open (or cannot be taken).
        let outcome = tracker.look(
            root.path(),
            &only_checkout,
            t0 + LOOK_TEST_GAP,
            0,
            |_| false,
            |_| false,
        );
        assert_eq!(
            outcome,
            LookOutcome {
                new_sockets: 1,
                ..LookOutcome::default()
            }
        );
        procfs(root.path(), &[(20, &[])]);
        tracker.look(
            root.path(),
            &only_checkout,
            t0 + 2 * LOOK_TEST_GAP,
            0,
            |_| false,
            |_| true,
        );
        let c = tracker.connections(t0 + 2 * LOOK_TEST_GAP);
        assert!(c["checkout"].ports.is_empty());
        assert_eq!(c["checkout"].unplaced_short_lived_1m, 1);
    }

    #[test]
    fn a_servers_accepted_sockets_stop_asking_for_dumps_once_placed_elsewhere() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut tracker = OutgoingTracker::new();
        let t0 = Instant::now();
        let at = |k: u32| t0 + LOOK_TEST_GAP * k;
        procfs(root.path(), &[(20, &[]), (30, &[1])]);
        tracker.observe(root.path(), &census(&[]), &targets(), t0, 0);
        let connected = |open: &[u64]| -> Vec<SocketEntry> {
            census(open)
                .into_iter()
                .filter(|e| e.state == SocketState::Established)
                .collect()
        };
        let mut look = |k: u32, checkout: &[u64], stock: &[u64], dumped: &[u64]| {
            procfs(root.path(), &[(20, checkout), (30, stock)]);
            let mut asked = false;
            let outcome = tracker.look(
                root.path(),
                &targets(),
                at(k),
                0,
                |_| false,
                |out| {
                    asked = true;
                    out.extend(connected(dumped));
                    true
                },
            );
            (outcome.new_sockets, asked)
        };
        // stock's accepted side of a connection of checkout's that closed before the look.
        assert_eq!(look(1, &[], &[1, 2201], &[1201]), (1, true));
        assert_eq!(look(2, &[], &[1], &[]), (0, false));
        // Its short-lived sockets all went elsewhere: a new one is no reason for a dump.
        assert_eq!(look(3, &[], &[1, 2202], &[1202]), (1, false));
        // checkout's new socket is.
        assert_eq!(look(4, &[1203], &[1], &[1203]), (1, true));
        let c = tracker.connections(at(4));
        assert_eq!(c["stock"].elsewhere_short_lived_1m, 1);
        assert_eq!(port(&c, "checkout", 9090).held, 1);
    }

    const LOOK_TEST_GAP: Duration = Duration::from_millis(50);

    #[test]
    fn a_restarted_process_closes_nothing_one_by_one() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut tracker = OutgoingTracker::new();
        let t0 = Instant::now();
        procfs(root.path(), &[(10, &[101, 102])]);
        let before = vec![("gateway".to_owned(), vec![10])];
        tracker.observe(root.path(), &census(&[]), &before, t0, 0);
        tracker.observe(root.path(), &census(&[]), &before, t0 + LOOK_TEST_GAP, 0);
        procfs(root.path(), &[(11, &[101, 102])]);
        let after = vec![("gateway".to_owned(), vec![11])];
        tracker.observe(root.path(), &census(&[]), &after, t0 + 2 * LOOK_TEST_GAP, 0);
        let c = tracker.connections(t0 + 2 * LOOK_TEST_GAP);
        assert_eq!(port(&c, "gateway", 8080).closed_1m, 0);
    }

    #[test]
    fn the_closed_count_is_bounded_and_says_so() {
        let mut target = Target::default();
        let now = Instant::now();
        let place = Place::To {
            port: 9090,
            local_port: 50_000,
        };
        for _ in 0..MAX_CLOSED_KEPT + 10 {
            target.note_closed(place, now, true);
        }
        let c = target.connections(now);
        assert_eq!(c.ports[0].closed_1m as usize, MAX_CLOSED_KEPT);
        assert!(c.ports[0].distinct_capped);
        assert_eq!(c.ports[0].local_ports.len(), MAX_LOCAL_PORTS_TOLD);
    }
}
