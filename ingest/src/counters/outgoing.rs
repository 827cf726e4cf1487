//! Outgoing connections per process target: which of the node's listeners each watched
//! process holds connections to, how many, and how many of them are new — the continuous form
//! of `ls -l /proc/PID/fd | grep socket` matched against `ss -tnp state established`.
//!
//! A TIME-WAIT storm on a listener's port says that connections to it are opened and closed
//! at a high rate, not by whom: TIME-WAIT sockets belong to no process. Spans name a caller
//! only when exactly one traced service calls the port. This names the caller from the
//! sockets themselves: a pooled client holds the same few connections census after census; a
//! client that opens a connection per call shows new ones at every census, and many distinct
//! ones over a minute (each may live a few milliseconds, so the distinct count over the
//! minute is the stronger witness).
//!
//! Execution model: [`OutgoingTracker::observe`] runs on the census thread after each fresh
//! census, for the process targets only (a few services, not the whole node). It reads the
//! descriptor links of their processes (`/proc/PID/fd/N` → `socket:[INODE]`) and matches the
//! inodes against the census's ESTABLISHED and SYN-SENT sockets whose remote port is one the
//! node listens on. Its CPU time is booked in the census budget by the caller.
//!
//! Cost: about 5 µs of kernel time per descriptor link (see `owners.rs`): a 500-descriptor
//! service, 2.5 ms a census. Bounds: at most [`MAX_TARGET_FDS`] links read per process, at
//! most [`MAX_PORTS_PER_TARGET`] ports kept per target, and at most
//! [`MAX_DISTINCT_PER_PORT`] inodes remembered per target and port for the minute's distinct
//! count (beyond it the count is a lower bound, and says so).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use faultline_series::SocketState;
use serde::Serialize;

use super::sockets::SocketEntry;

/// Most descriptor links read per process and census: a service with more descriptors than
/// this is leaking them, and its counts here become a lower bound.
pub const MAX_TARGET_FDS: usize = 8192;

/// Most remote ports kept per target (the ports with the most connections first).
pub const MAX_PORTS_PER_TARGET: usize = 32;

/// Most inodes remembered per target and port for [`OutgoingPort::distinct_1m`]: a client
/// opening a connection per call at 100 calls a second, over the minute, with the census
/// seeing one in a few.
pub const MAX_DISTINCT_PER_PORT: usize = 4096;

/// How far back [`OutgoingPort::distinct_1m`] counts.
pub const DISTINCT_WINDOW: Duration = Duration::from_secs(60);

/// One process target's connections to one of the node's listening ports, at one census.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingPort {
    /// The listening port the connections go to.
    pub port: u16,
    /// Connections (ESTABLISHED or SYN-SENT) the target held to it at the census.
    pub held: u32,
    /// Of those, how many the previous census of this target did not see.
    pub new: u32,
    /// Distinct connections seen over the last minute of censuses (at least this many when
    /// `distinct_capped`).
    pub distinct_1m: u32,
    /// Whether the distinct count reached its bound ([`MAX_DISTINCT_PER_PORT`]).
    pub distinct_capped: bool,
}

/// What one target held at one census: its connections per listening port, the most first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutgoingConnections {
    /// When the census was taken: the sample time it was taken for (Unix ms).
    pub counted_unix_ms: i64,
    /// Per remote port (at most [`MAX_PORTS_PER_TARGET`]).
    pub ports: Vec<OutgoingPort>,
    /// Descriptor links read (the cost of this census, in links).
    pub links_read: u32,
}

/// The state kept between censuses (see the module docs).
#[derive(Debug, Default)]
pub struct OutgoingTracker {
    /// Per target: the inodes per port at its previous census.
    previous: BTreeMap<String, BTreeMap<u16, BTreeSet<u64>>>,
    /// Per target and port: inodes seen, with when each was first seen, oldest first.
    seen: BTreeMap<(String, u16), VecDeque<(Instant, u64)>>,
}

impl OutgoingTracker {
    /// An empty tracker.
    pub fn new() -> OutgoingTracker {
        OutgoingTracker::default()
    }

    /// Reads the descriptor links of each target's processes under `proc_root` and matches
    /// them against the census `entries`, at `now`. `targets` are (target name, its process
    /// ids); a target with no process keeps no state. The answers' `counted_unix_ms` is left
    /// 0 for the caller, who knows the census's sample time. Blocking.
    pub fn observe(
        &mut self,
        proc_root: &Path,
        entries: &[SocketEntry],
        targets: &[(String, Vec<u32>)],
        now: Instant,
    ) -> BTreeMap<String, OutgoingConnections> {
        let listening: BTreeSet<u16> = entries
            .iter()
            .filter(|e| e.state == SocketState::Listen)
            .map(|e| e.local.port())
            .collect();
        // Inode → remote port of the connections to the node's listeners.
        let to_listener: BTreeMap<u64, u16> = entries
            .iter()
            .filter(|e| {
                matches!(e.state, SocketState::Established | SocketState::SynSent)
                    && e.inode != 0
                    && listening.contains(&e.remote.port())
            })
            .map(|e| (e.inode, e.remote.port()))
            .collect();
        let mut out = BTreeMap::new();
        let live: BTreeSet<&str> = targets
            .iter()
            .filter(|(_, pids)| !pids.is_empty())
            .map(|(name, _)| name.as_str())
            .collect();
        self.previous.retain(|name, _| live.contains(name.as_str()));
        self.seen
            .retain(|(name, _), _| live.contains(name.as_str()));
        for (name, pids) in targets.iter().filter(|(_, pids)| !pids.is_empty()) {
            let mut links_read = 0u32;
            let mut by_port: BTreeMap<u16, BTreeSet<u64>> = BTreeMap::new();
            for pid in pids {
                for inode in socket_inodes(proc_root, *pid, &mut links_read) {
                    if let Some(&port) = to_listener.get(&inode) {
                        by_port.entry(port).or_default().insert(inode);
                    }
                }
            }
            let before = self.previous.remove(name).unwrap_or_default();
            let mut ports: Vec<OutgoingPort> = by_port
                .iter()
                .map(|(&port, inodes)| {
                    let known = before.get(&port);
                    let new = inodes
                        .iter()
                        .filter(|i| known.is_none_or(|k| !k.contains(i)))
                        .count();
                    let seen = self.seen.entry((name.clone(), port)).or_default();
                    let (distinct, capped) = note_seen(seen, inodes, now);
                    OutgoingPort {
                        port,
                        held: u32::try_from(inodes.len()).unwrap_or(u32::MAX),
                        new: u32::try_from(new).unwrap_or(u32::MAX),
                        distinct_1m: distinct,
                        distinct_capped: capped,
                    }
                })
                .collect();
            // Ports held at an earlier census only still count their distinct connections
            // for the minute: a client whose connections each live a few milliseconds is
            // seen holding none at most censuses.
            for ((target, port), seen) in &mut self.seen {
                if target != name || by_port.contains_key(port) {
                    continue;
                }
                let (distinct, capped) = note_seen(seen, &BTreeSet::new(), now);
                if distinct > 0 {
                    ports.push(OutgoingPort {
                        port: *port,
                        held: 0,
                        new: 0,
                        distinct_1m: distinct,
                        distinct_capped: capped,
                    });
                }
            }
            self.seen.retain(|_, seen| !seen.is_empty());
            ports.sort_by(|a, b| {
                (b.distinct_1m, b.held, a.port).cmp(&(a.distinct_1m, a.held, b.port))
            });
            ports.truncate(MAX_PORTS_PER_TARGET);
            self.previous.insert(name.clone(), by_port);
            out.insert(
                name.clone(),
                OutgoingConnections {
                    counted_unix_ms: 0,
                    ports,
                    links_read,
                },
            );
        }
        out
    }
}

/// Notes the `inodes` held now in `seen` (first sight of each), forgets what is older than
/// [`DISTINCT_WINDOW`] and beyond [`MAX_DISTINCT_PER_PORT`], and returns the distinct count
/// over the window and whether it reached the bound.
fn note_seen(
    seen: &mut VecDeque<(Instant, u64)>,
    inodes: &BTreeSet<u64>,
    now: Instant,
) -> (u32, bool) {
    while seen
        .front()
        .is_some_and(|(at, _)| now.saturating_duration_since(*at) > DISTINCT_WINDOW)
    {
        seen.pop_front();
    }
    let known: BTreeSet<u64> = seen.iter().map(|(_, i)| *i).collect();
    let mut capped = false;
    for inode in inodes.iter().filter(|i| !known.contains(i)) {
        if seen.len() >= MAX_DISTINCT_PER_PORT {
            seen.pop_front();
            capped = true;
        }
        seen.push_back((now, *inode));
    }
    capped |= seen.len() >= MAX_DISTINCT_PER_PORT;
    (u32::try_from(seen.len()).unwrap_or(u32::MAX), capped)
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

    /// A procfs tree: each (pid, socket inodes) as `PID/fd/N` links (and a non-socket fd).
    fn procfs(processes: &[(u32, &[u64])]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (pid, inodes) in processes {
            let dir = root.path().join(pid.to_string()).join("fd");
            std::fs::create_dir_all(&dir).expect("fd dir");
            std::os::unix::fs::symlink("/dev/null", dir.join("0")).expect("fd 0");
            for (i, inode) in inodes.iter().enumerate() {
                let link = dir.join((i + 3).to_string());
                std::os::unix::fs::symlink(format!("socket:[{inode}]"), link).expect("socket link");
            }
        }
        root
    }

    #[test]
    fn a_pooled_client_and_a_client_opening_a_connection_per_call_tell_apart() {
        // The node listens on 8080 (orders) and 9090 (stock). gateway (pid 10) keeps two
        // pooled connections to 8080; checkout (pid 20) opens a new one to 9090 per call.
        // Each holds a connection to a port nobody on the node listens on (443), and stock's
        // own accepted side of the connections is not an outgoing connection of anyone.
        let listeners = [
            entry(SocketState::Listen, 8080, 0, 1),
            entry(SocketState::Listen, 9090, 0, 2),
        ];
        let census = |checkout: &[u64]| {
            let mut e = listeners.to_vec();
            e.push(entry(SocketState::Established, 40001, 8080, 101));
            e.push(entry(SocketState::Established, 40002, 8080, 102));
            e.push(entry(SocketState::Established, 40003, 443, 103));
            for (i, inode) in checkout.iter().enumerate() {
                let state = if i == 0 {
                    SocketState::SynSent
                } else {
                    SocketState::Established
                };
                e.push(entry(state, 50000 + i as u16, 9090, *inode));
                e.push(entry(
                    SocketState::Established,
                    9090,
                    50000 + i as u16,
                    inode + 1000,
                ));
            }
            // A TIME-WAIT socket has no inode and no process.
            e.push(entry(SocketState::TimeWait, 40009, 9090, 0));
            e
        };
        let targets = vec![
            ("gateway".to_owned(), vec![10]),
            ("checkout".to_owned(), vec![20]),
            ("stopped".to_owned(), vec![]),
        ];
        let mut tracker = OutgoingTracker::new();
        let t0 = Instant::now();
        let mut last = BTreeMap::new();
        for (k, batch) in [[201u64, 202, 203], [204, 205, 206], [207, 208, 209]]
            .iter()
            .enumerate()
        {
            let root = procfs(&[(10, &[101, 102, 103]), (20, &batch[..]), (30, &[1001])]);
            let now = t0 + Duration::from_secs(5 * k as u64);
            last = tracker.observe(root.path(), &census(batch), &targets, now);
        }
        assert!(!last.contains_key("stopped"));
        let gateway = &last["gateway"].ports;
        assert_eq!(
            gateway,
            &vec![OutgoingPort {
                port: 8080,
                held: 2,
                new: 0,
                distinct_1m: 2,
                distinct_capped: false,
            }]
        );
        let checkout = &last["checkout"].ports;
        assert_eq!(
            checkout,
            &vec![OutgoingPort {
                port: 9090,
                held: 3,
                new: 3,
                distinct_1m: 9,
                distinct_capped: false,
            }]
        );
        // Links read: three sockets and /dev/null.
        assert_eq!(last["checkout"].links_read, 4);

        // checkout holds nothing at the next census (its connections live milliseconds):
        // the minute's distinct connections are still told; a minute later they are gone.
        let root = procfs(&[(10, &[101, 102, 103]), (20, &[])]);
        let now = t0 + Duration::from_secs(15);
        let quiet = tracker.observe(root.path(), &census(&[]), &targets, now);
        assert_eq!(quiet["checkout"].ports[0].held, 0);
        assert_eq!(quiet["checkout"].ports[0].distinct_1m, 9);
        let later = tracker.observe(
            root.path(),
            &census(&[]),
            &targets,
            t0 + Duration::from_secs(80),
        );
        assert!(later["checkout"].ports.is_empty(), "{later:?}");
    }

    #[test]
    fn the_distinct_count_is_bounded_and_says_so() {
        let mut seen = VecDeque::new();
        let now = Instant::now();
        let many: BTreeSet<u64> = (0..(MAX_DISTINCT_PER_PORT as u64 + 10)).collect();
        let (distinct, capped) = note_seen(&mut seen, &many, now);
        assert_eq!(distinct as usize, MAX_DISTINCT_PER_PORT);
        assert!(capped);
        assert_eq!(seen.len(), MAX_DISTINCT_PER_PORT);
    }
}
