//! Which process listens on each port of the node: the socket census's listening sockets,
//! each mapped to the process holding it (pid and command name).
//!
//! Culprit attribution needs it when a caller's call fails towards a port whose service sent
//! no span saying it serves there — a callee that hangs or never accepts has no SERVER span
//! at all. The caller's CLIENT span names the port; this names the process behind it.
//!
//! Execution model: [`PortOwners::resolve`] runs on the sampler's blocking thread after each
//! census. A listening socket's owner is found through its inode in the `/proc/PID/fd` links
//! (`socket:[INODE]`), which means reading descriptor links of the node's processes: the scan
//! runs only when a listening socket appears whose owner is not known yet, at most once per
//! [`SCAN_GAP`], and an inode it could not place (another network namespace, a process the
//! agent may not read) is tried again only after [`RETRY_UNPLACED`]. Between scans the
//! answer is the cached one, pruned to the sockets still listening.
//!
//! Cost: a scan that reads every link costs about 5 µs of kernel time per descriptor (a shared
//! build machine with 180 processes and 9,000 descriptors: 40–60 ms a scan), and on a node
//! where test servers or short-lived services open listeners all the time, a scan was due at
//! every [`SCAN_GAP`]: about 1 % of a core for this alone, the agent's whole budget. So
//! - the processes of the agent's own network namespace (the only ones whose sockets the
//!   census counts, bar a descriptor passed across namespaces) are read first, and among
//!   them the newest first: a new listener is most often a new process's, and the scan stops
//!   as soon as every wanted socket is placed;
//! - a scan's CPU time is booked: the next one waits until it is within
//!   [`SCAN_CPU_BUDGET`] of a core (a 50 ms scan: 25 s), never less than [`SCAN_GAP`].
//!
//! Bounds: at most [`MAX_OWNED_PORTS`] listening sockets are resolved (the lowest ports
//! first: services listen on fixed ports, ephemeral listeners of test servers come later).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use faultline_series::SocketState;
use serde::Serialize;

use super::sockets::SocketEntry;

/// Most listening sockets resolved: far more services than one node runs, and a bound on
/// the work of a node full of ephemeral test listeners.
pub const MAX_OWNED_PORTS: usize = 512;

/// Shortest time between two scans of the process table: a scan reads every descriptor link
/// of the node (tens of milliseconds on a node with thousands of descriptors), and listeners
/// that come and go (test servers) must not make it run every second.
pub const SCAN_GAP: Duration = Duration::from_secs(5);

/// How long an inode that no scan could place is left alone: its process is out of the
/// agent's sight (another network namespace, no permission) and stays so.
pub const RETRY_UNPLACED: Duration = Duration::from_secs(60);

/// Most of one core the scans may use on average (0.2 %): a scan that cost `c` of CPU is
/// followed by the next one no sooner than `c / SCAN_CPU_BUDGET` later (and [`SCAN_GAP`]).
pub const SCAN_CPU_BUDGET: f64 = 0.002;

/// The process holding one listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortOwner {
    /// The port it listens on.
    pub port: u16,
    /// Its process id.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub process: String,
}

/// Resolves listening sockets to their processes, with a cache (see the module docs).
#[derive(Debug, Default)]
pub struct PortOwners {
    /// Inode → (port, pid, command name) of the sockets placed so far.
    placed: BTreeMap<u64, PortOwner>,
    /// Inodes no scan could place, with when they were last tried.
    unplaced: BTreeMap<u64, Instant>,
    /// When the next scan may run (see the module docs).
    next_scan: Option<Instant>,
}

impl PortOwners {
    /// An empty resolver.
    pub fn new() -> PortOwners {
        PortOwners::default()
    }

    /// The owners of the listening sockets among `entries` (one per port and process, by
    /// port), scanning `proc_root` when a socket's owner is not known yet (see the module
    /// docs for how often).
    pub fn resolve(&mut self, proc_root: &Path, entries: &[SocketEntry]) -> Vec<PortOwner> {
        self.resolve_at(proc_root, entries, Instant::now())
    }

    fn resolve_at(
        &mut self,
        proc_root: &Path,
        entries: &[SocketEntry],
        now: Instant,
    ) -> Vec<PortOwner> {
        let mut listening: Vec<(u16, u64)> = entries
            .iter()
            .filter(|e| e.state == SocketState::Listen && e.inode != 0)
            .map(|e| (e.local.port(), e.inode))
            .collect();
        listening.sort_unstable();
        listening.dedup();
        listening.truncate(MAX_OWNED_PORTS);
        let alive: BTreeSet<u64> = listening.iter().map(|(_, inode)| *inode).collect();
        self.placed.retain(|inode, _| alive.contains(inode));
        self.unplaced.retain(|inode, _| alive.contains(inode));

        let wanted: BTreeMap<u64, u16> = listening
            .iter()
            .filter(|(_, inode)| !self.placed.contains_key(inode))
            .filter(|(_, inode)| {
                self.unplaced
                    .get(inode)
                    .is_none_or(|at| now.duration_since(*at) >= RETRY_UNPLACED)
            })
            .map(|(port, inode)| (*inode, *port))
            .collect();
        let due = self.next_scan.is_none_or(|at| now >= at);
        if !wanted.is_empty() && due {
            let cpu = super::sampler::thread_cpu();
            let (found, _) = scan(proc_root, &wanted);
            self.book_scan(now, super::sampler::thread_cpu().saturating_sub(cpu));
            for (inode, port) in wanted {
                match found.get(&inode) {
                    Some(&pid) => {
                        self.unplaced.remove(&inode);
                        self.placed.insert(
                            inode,
                            PortOwner {
                                port,
                                pid,
                                process: command_name(proc_root, pid),
                            },
                        );
                    }
                    None => {
                        self.unplaced.insert(inode, now);
                    }
                }
            }
        }

        let mut owners: Vec<PortOwner> = self.placed.values().cloned().collect();
        owners.sort_by_key(|o| (o.port, o.pid));
        // IPv4 and IPv6 sockets of one process on one port are one owner.
        owners.dedup_by(|a, b| a.port == b.port && a.pid == b.pid);
        owners
    }

    /// Books a scan that ran at `now` and cost `cpu`: the next one waits for the budget.
    fn book_scan(&mut self, now: Instant, cpu: Duration) {
        let wait = cpu.div_f64(SCAN_CPU_BUDGET).max(SCAN_GAP);
        self.next_scan = Some(now + wait);
    }
}

/// The pid holding each wanted inode, and how many processes were read to find them: the
/// processes of the agent's own network namespace first, the newest (highest pid) first, then
/// the others; it stops once every wanted inode is placed. A socket shared by a parent and
/// its children (a server's master and its forked workers, systemd and the service it
/// passed the socket to) is the eldest holder's, as when the table was read oldest first:
/// from the process it is found in, the parents that hold it too are climbed.
fn scan(proc_root: &Path, wanted: &BTreeMap<u64, u16>) -> (BTreeMap<u64, u32>, usize) {
    let mut found = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return (found, 0);
    };
    let own_net = std::fs::read_link(proc_root.join("self/ns/net")).ok();
    // (in another namespace, newest first): false sorts first, and so does the larger pid.
    let mut order: Vec<(bool, std::cmp::Reverse<u32>)> = dir
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .map(|pid| {
            let elsewhere = own_net.as_ref().is_some_and(|own| {
                std::fs::read_link(proc_root.join(pid.to_string()).join("ns/net"))
                    .is_ok_and(|net| net != *own)
            });
            (elsewhere, std::cmp::Reverse(pid))
        })
        .collect();
    order.sort_unstable();
    let mut read = 0;
    for (_, std::cmp::Reverse(pid)) in order {
        if found.len() == wanted.len() {
            break;
        }
        // A process that exits mid-scan or hides its descriptors is skipped.
        let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
            continue;
        };
        read += 1;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = socket_inode(target.to_str().unwrap_or_default()) {
                if wanted.contains_key(&inode) && !found.contains_key(&inode) {
                    found.insert(inode, eldest_holder(proc_root, pid, inode));
                }
            }
        }
    }
    (found, read)
}

/// The eldest of `pid` and its parents that holds socket `inode` (`pid` itself when its
/// parent does not).
fn eldest_holder(proc_root: &Path, pid: u32, inode: u64) -> u32 {
    let mut holder = pid;
    // Bounded: a process tree is not this deep, and a loop in a hostile procfs must end.
    for _ in 0..64 {
        let Some(parent) = parent_pid(proc_root, holder).filter(|&p| p != 0 && p != holder) else {
            break;
        };
        if !holds(proc_root, parent, inode) {
            break;
        }
        holder = parent;
    }
    holder
}

/// The parent pid from `/proc/PID/stat` (the field after the state, which follows the
/// command name's closing parenthesis).
fn parent_pid(proc_root: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Whether process `pid` holds socket `inode` among its descriptors.
fn holds(proc_root: &Path, pid: u32, inode: u64) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|t| socket_inode(t.to_str().unwrap_or_default()) == Some(inode))
    })
}

/// The inode of a descriptor link `socket:[INODE]`.
pub(super) fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `/proc/PID/comm` without its newline; `pid N` when it cannot be read.
fn command_name(proc_root: &Path, pid: u32) -> String {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
        .ok()
        .map(|c| c.trim_end_matches('\n').to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("pid {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::sockets::Family;
    use std::net::SocketAddr;

    fn listening(port: u16, inode: u64) -> SocketEntry {
        SocketEntry {
            family: Family::Ipv4,
            state: SocketState::Listen,
            local: SocketAddr::from(([127, 0, 0, 1], port)),
            remote: SocketEntry::unspecified(Family::Ipv4),
            recv_queue: 0,
            send_queue: Some(128),
            inode,
        }
    }

    /// A procfs tree: each (pid, comm, socket inodes) as `PID/comm` and `PID/fd/N` links.
    fn procfs(processes: &[(u32, &str, &[u64])]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (pid, comm, inodes) in processes {
            let dir = root.path().join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).expect("fd dir");
            std::fs::write(dir.join("comm"), format!("{comm}\n")).expect("comm");
            std::os::unix::fs::symlink("/dev/null", dir.join("fd").join("0")).expect("fd 0");
            for (i, inode) in inodes.iter().enumerate() {
                std::os::unix::fs::symlink(
                    format!("socket:[{inode}]"),
                    dir.join("fd").join((i + 3).to_string()),
                )
                .expect("socket link");
            }
        }
        root
    }

    #[test]
    fn each_listening_port_is_owned_by_the_process_holding_its_socket() {
        let root = procfs(&[(10, "orders", &[501, 777]), (20, "stock", &[502])]);
        let entries = [
            listening(8080, 501),
            listening(8081, 502),
            // Not listening: a connection's inode is no owner of a port.
            SocketEntry {
                state: SocketState::Established,
                ..listening(40000, 777)
            },
        ];
        let owners = PortOwners::new().resolve(root.path(), &entries);
        assert_eq!(
            owners,
            vec![
                PortOwner {
                    port: 8080,
                    pid: 10,
                    process: "orders".into()
                },
                PortOwner {
                    port: 8081,
                    pid: 20,
                    process: "stock".into()
                },
            ]
        );
    }

    #[test]
    fn a_known_owner_is_not_scanned_again_and_a_closed_listener_is_forgotten() {
        let root = procfs(&[(10, "orders", &[501])]);
        let mut owners = PortOwners::new();
        let t0 = Instant::now();
        assert_eq!(
            owners.resolve_at(root.path(), &[listening(8080, 501)], t0)[0].pid,
            10
        );
        // The process table changes but the socket is known: the cached owner stands
        // without a scan (a scan would find nobody now).
        std::fs::remove_dir_all(root.path().join("10")).expect("remove");
        let again = owners.resolve_at(root.path(), &[listening(8080, 501)], t0);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].process, "orders");
        // The listener closed: its owner goes with it.
        assert!(owners.resolve_at(root.path(), &[], t0).is_empty());
    }

    #[test]
    fn new_listeners_wait_for_the_scan_gap_and_unplaced_ones_for_the_retry() {
        let root = procfs(&[(10, "orders", &[501]), (20, "stock", &[502])]);
        let mut owners = PortOwners::new();
        let t0 = Instant::now();
        // 999 belongs to no process the agent can see.
        let first = owners.resolve_at(
            root.path(),
            &[listening(8080, 501), listening(9000, 999)],
            t0,
        );
        assert_eq!(first.len(), 1);
        let entries = [
            listening(8080, 501),
            listening(8081, 502),
            listening(9000, 999),
        ];
        // Within the scan gap, a new listener waits.
        assert_eq!(
            owners
                .resolve_at(root.path(), &entries, t0 + SCAN_GAP / 2)
                .len(),
            1
        );
        let later = owners.resolve_at(root.path(), &entries, t0 + SCAN_GAP);
        assert_eq!(
            later.iter().map(|o| o.port).collect::<Vec<_>>(),
            vec![8080, 8081]
        );
        assert!(owners.unplaced.contains_key(&999));
    }

    /// Writes `PID/stat` naming `ppid` as the parent of `pid`.
    fn parent(root: &tempfile::TempDir, pid: u32, ppid: u32) {
        let stat = format!("{pid} (a (b) c) S {ppid} {pid} {pid} 0 -1\n");
        std::fs::write(root.path().join(pid.to_string()).join("stat"), stat).expect("stat");
    }

    /// Links `PID/ns/net` (or `self/ns/net` for `None`) to network namespace `ns`.
    fn namespace(root: &tempfile::TempDir, pid: Option<u32>, ns: u32) {
        let dir = root
            .path()
            .join(pid.map_or("self".to_owned(), |p| p.to_string()))
            .join("ns");
        std::fs::create_dir_all(&dir).expect("ns dir");
        std::os::unix::fs::symlink(format!("net:[{ns}]"), dir.join("net")).expect("ns link");
    }

    #[test]
    fn a_new_listener_is_found_in_the_newest_process_without_reading_the_others() {
        let old: Vec<(u32, &str, &[u64])> = (10..40).map(|pid| (pid, "old", &[][..])).collect();
        let mut processes = old;
        processes.push((40, "new", &[501]));
        let root = procfs(&processes);
        let (found, read) = scan(root.path(), &BTreeMap::from([(501, 8080)]));
        assert_eq!(found, BTreeMap::from([(501, 40)]));
        assert_eq!(read, 1, "only the newest process is read");
        // A socket nobody holds: every process is read.
        let (found, read) = scan(root.path(), &BTreeMap::from([(999, 9000)]));
        assert!(found.is_empty());
        assert_eq!(read, 31);
    }

    #[test]
    fn a_socket_shared_with_forked_workers_is_the_eldest_holders() {
        // A master (10, child of 1) and its workers (11, 12) share the listener; 13, a child
        // of the master that does not hold it, and its own child 14 that does (handed over
        // later) are not the master's.
        let root = procfs(&[
            (1, "init", &[]),
            (10, "master", &[501]),
            (11, "worker", &[501]),
            (12, "worker", &[501]),
            (13, "helper", &[]),
            (14, "late", &[502]),
        ]);
        for (pid, ppid) in [(10, 1), (11, 10), (12, 10), (13, 10), (14, 13)] {
            parent(&root, pid, ppid);
        }
        let owners =
            PortOwners::new().resolve(root.path(), &[listening(8080, 501), listening(8081, 502)]);
        let pids: Vec<(u16, u32)> = owners.iter().map(|o| (o.port, o.pid)).collect();
        assert_eq!(pids, vec![(8080, 10), (8081, 14)]);
        assert_eq!(owners[0].process, "master");
    }

    #[test]
    fn processes_of_another_network_namespace_are_read_last() {
        let root = procfs(&[(10, "mine", &[501]), (20, "pod", &[]), (30, "pod", &[])]);
        namespace(&root, None, 1);
        namespace(&root, Some(10), 1);
        namespace(&root, Some(20), 2);
        namespace(&root, Some(30), 2);
        let (found, read) = scan(root.path(), &BTreeMap::from([(501, 8080)]));
        assert_eq!(found, BTreeMap::from([(501, 10)]));
        assert_eq!(read, 1, "the newer processes of another namespace wait");
    }

    #[test]
    fn an_expensive_scan_is_followed_by_a_longer_wait() {
        let root = procfs(&[(10, "orders", &[501]), (20, "stock", &[502])]);
        let mut owners = PortOwners::new();
        let t0 = Instant::now();
        assert_eq!(
            owners
                .resolve_at(root.path(), &[listening(8080, 501)], t0)
                .len(),
            1
        );
        // As if that scan had cost 100 ms of CPU: at 0.2 % of a core, the next waits 50 s.
        owners.book_scan(t0, Duration::from_millis(100));
        let both = [listening(8080, 501), listening(8081, 502)];
        assert_eq!(
            owners.resolve_at(root.path(), &both, t0 + SCAN_GAP).len(),
            1
        );
        let later = owners.resolve_at(root.path(), &both, t0 + Duration::from_secs(50));
        assert_eq!(later.len(), 2);
    }

    #[test]
    fn descriptor_links_name_socket_inodes() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }
}
