//! Which process listens on each port of the node: the socket census's listening sockets,
//! each mapped to the process holding it (pid and command name).
//!
//! Culprit attribution needs it when a caller's call fails towards a port whose service sent
//! no span saying it serves there — a callee that hangs or never accepts has no SERVER span
//! at all. The caller's CLIENT span names the port; this names the process behind it.
//!
//! Execution model: [`PortOwners::resolve`] runs on the sampler's blocking thread after each
//! census. A listening socket's owner is found through its inode in the `/proc/PID/fd` links
//! (`socket:[INODE]`), which means reading every descriptor link of every process: the scan
//! runs only when a listening socket appears whose owner is not known yet, at most once per
//! [`SCAN_GAP`], and an inode it could not place (another network namespace, a process the
//! agent may not read) is tried again only after [`RETRY_UNPLACED`]. Between scans the
//! answer is the cached one, pruned to the sockets still listening.
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
    last_scan: Option<Instant>,
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
        let due = self
            .last_scan
            .is_none_or(|at| now.duration_since(at) >= SCAN_GAP);
        if !wanted.is_empty() && due {
            self.last_scan = Some(now);
            let found = scan(proc_root, &wanted);
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
}

/// The pid holding each wanted inode: one pass over every process's descriptor links.
fn scan(proc_root: &Path, wanted: &BTreeMap<u64, u16>) -> BTreeMap<u64, u32> {
    let mut found = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that exits mid-scan or hides its descriptors is skipped.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = socket_inode(target.to_str().unwrap_or_default()) {
                if wanted.contains_key(&inode) {
                    found.entry(inode).or_insert(pid);
                }
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}

/// The inode of a descriptor link `socket:[INODE]`.
fn socket_inode(link: &str) -> Option<u64> {
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

    #[test]
    fn descriptor_links_name_socket_inodes() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }
}
