//! Picks the socket source for each sample: netlink `sock_diag` when it works, `/proc/net/tcp{,6}`
//! when it does not, and says which one answered and why the other did not.
//!
//! The reader keeps its socket-list buffer between samples so a census at 100k sockets does not
//! reallocate every second.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::SocketSourceChoice;
use super::error::CounterError;
use super::netlink::NetlinkSockets;
use super::outgoing::OutgoingConnections;
use super::proc_tcp::read_proc_tcp;
use super::sockets::{
    PortClassifier, SocketCensus, SocketEntry, SocketSource, DEFAULT_EPHEMERAL_PORTS,
};

/// After netlink fails, how long the reader stays on `/proc` before trying netlink again.
const NETLINK_RETRY: Duration = Duration::from_secs(60);

/// The outcome of one read: the census and, when netlink was wanted but not used, why.
#[derive(Debug)]
pub struct CensusReading {
    /// The census, or why no source could be read.
    pub census: Result<SocketCensus, CounterError>,
    /// Why netlink was not used for this census (`None` when it was, or was not wanted).
    pub netlink_problem: Option<String>,
    /// Set when the census is taken less often than every sample to stay within the CPU
    /// budget (this reading may then repeat the last census): how often, and why.
    pub budget_note: Option<String>,
    /// When this reading repeats an earlier census: that census's sample time (Unix ms).
    /// `None` when the sockets were counted for this reading.
    pub repeats_unix_ms: Option<i64>,
    /// The process targets' connections to the node's listeners at this census, by target
    /// name (see [`super::outgoing`]); empty when the census failed or took none.
    pub outgoing: BTreeMap<String, OutgoingConnections>,
}

impl CensusReading {
    /// A reading with nothing to add to its census (or to why there is none): netlink was
    /// used or not wanted, and the census was taken at its sample.
    pub fn of(census: Result<SocketCensus, CounterError>) -> CensusReading {
        CensusReading {
            census,
            netlink_problem: None,
            budget_note: None,
            repeats_unix_ms: None,
            outgoing: BTreeMap::new(),
        }
    }
}

/// Reads the node's TCP sockets from the configured source.
#[derive(Debug)]
pub struct SocketReader {
    choice: SocketSourceChoice,
    proc_root: PathBuf,
    netlink: Option<NetlinkSockets>,
    netlink_problem: Option<(String, Instant)>,
    entries: Vec<SocketEntry>,
    ports: PortClassifier,
    ephemeral: RangeInclusive<u16>,
}

impl SocketReader {
    /// A reader using `choice`, with procfs under `proc_root`.
    pub fn new(choice: SocketSourceChoice, proc_root: impl Into<PathBuf>) -> SocketReader {
        let proc_root = proc_root.into();
        let ephemeral = read_ephemeral_range(&proc_root).unwrap_or(DEFAULT_EPHEMERAL_PORTS);
        SocketReader {
            choice,
            proc_root,
            netlink: None,
            netlink_problem: None,
            entries: Vec::new(),
            ports: PortClassifier::new(ephemeral.clone()),
            ephemeral,
        }
    }

    /// The sockets read by the last [`SocketReader::census`].
    pub fn entries(&self) -> &[SocketEntry] {
        &self.entries
    }

    /// Reads every TCP socket and counts them.
    pub fn census(&mut self) -> CensusReading {
        self.entries.clear();
        let use_netlink = match self.choice {
            SocketSourceChoice::Proc => false,
            SocketSourceChoice::Netlink => true,
            SocketSourceChoice::Auto => self
                .netlink_problem
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= NETLINK_RETRY),
        };
        if use_netlink {
            match self.read_netlink() {
                Ok(()) => {
                    self.netlink_problem = None;
                    return CensusReading::of(Ok(self.count(SocketSource::Netlink)));
                }
                Err(e) => {
                    self.netlink = None;
                    self.entries.clear();
                    self.netlink_problem = Some((e.to_string(), Instant::now()));
                    if self.choice == SocketSourceChoice::Netlink {
                        return CensusReading {
                            census: Err(e),
                            netlink_problem: Some(e_string(&self.netlink_problem)),
                            budget_note: None,
                            repeats_unix_ms: None,
                            outgoing: BTreeMap::new(),
                        };
                    }
                }
            }
        }
        let census = read_proc_tcp(&self.proc_root, &mut self.entries)
            .map(|_skipped| self.count(SocketSource::ProcNet));
        let netlink_problem = match self.choice {
            SocketSourceChoice::Auto => Some(e_string(&self.netlink_problem)),
            _ => None,
        };
        CensusReading {
            census,
            netlink_problem,
            budget_note: None,
            repeats_unix_ms: None,
            outgoing: BTreeMap::new(),
        }
    }

    /// Appends the node's open connections (ESTABLISHED and SYN-SENT) to `out` from the
    /// netlink socket the censuses use, only those from or to `port` if given; `false` when
    /// the censuses do not use netlink (a `/proc/net/tcp` read is a census's cost, not a
    /// glance's) or the dump failed.
    pub fn connections(&mut self, port: Option<u16>, out: &mut Vec<SocketEntry>) -> bool {
        match self.netlink.as_mut() {
            Some(nl) if self.netlink_problem.is_none() => nl.read_connections(port, out).is_ok(),
            _ => false,
        }
    }

    /// Whether the censuses read netlink `sock_diag` (what a [`ConnectionFinder`] asks too).
    ///
    /// [`ConnectionFinder`]: super::closes::ConnectionFinder
    pub fn uses_netlink(&self) -> bool {
        self.netlink.is_some() && self.netlink_problem.is_none()
    }

    /// The node's ephemeral port range (`ip_local_port_range`), where clients' ports are.
    pub fn ephemeral(&self) -> RangeInclusive<u16> {
        self.ephemeral.clone()
    }

    fn read_netlink(&mut self) -> Result<(), CounterError> {
        if self.netlink.is_none() {
            self.netlink = Some(NetlinkSockets::open()?);
        }
        match self.netlink.as_mut() {
            Some(nl) => nl.read_all(&mut self.entries),
            None => Err(CounterError::NetlinkMalformed("socket not open".into())),
        }
    }

    fn count(&mut self, source: SocketSource) -> SocketCensus {
        let census = SocketCensus::count(source, &self.entries, &mut self.ports);
        give_back_unused(&mut self.entries);
        census
    }
}

/// Gives back most of `buffer`'s room once it holds far fewer entries than it has room for:
/// the list is kept from one census to the next, and a storm of 60,000 TIME-WAIT sockets would
/// otherwise keep ~5 MiB of room for the rest of the agent's life. Room for 4,096 entries is
/// always kept, and at least twice the entries held, so a count that comes and goes does not
/// reallocate every census.
fn give_back_unused<T>(buffer: &mut Vec<T>) {
    const KEPT: usize = 4096;
    if buffer.capacity() > KEPT && buffer.len() < buffer.capacity() / 4 {
        buffer.shrink_to((buffer.len() * 2).max(KEPT));
    }
}

fn e_string(problem: &Option<(String, Instant)>) -> String {
    problem
        .as_ref()
        .map(|(why, _)| why.clone())
        .unwrap_or_else(|| "not tried yet".into())
}

/// `net/ipv4/ip_local_port_range` ("32768\t60999").
fn read_ephemeral_range(proc_root: &Path) -> Option<RangeInclusive<u16>> {
    let text = std::fs::read_to_string(proc_root.join("sys/net/ipv4/ip_local_port_range")).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let low = parts.next()?.parse().ok()?;
    let high = parts.next()?.parse().ok()?;
    (low <= high).then_some(low..=high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/net/tcp` with `n` sockets in TIME-WAIT towards 127.0.0.1:8080.
    fn proc_tcp(n: usize) -> String {
        let mut text = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for i in 0..n {
            text.push_str(&format!(
                "{i:4}: 0100007F:{:04X} 0100007F:1F90 06 00000000:00000000 03:00000F9F 00000000     0        0 0\n",
                20_000 + i % 40_000
            ));
        }
        text
    }

    #[test]
    fn the_socket_list_gives_back_its_room_after_a_storm() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("net")).unwrap();
        let mut reader = SocketReader::new(SocketSourceChoice::Proc, root.path());
        std::fs::write(root.path().join("net/tcp"), proc_tcp(30_000)).unwrap();
        let storm = reader.census().census.unwrap();
        assert_eq!(
            storm.by_state.get(faultline_series::SocketState::TimeWait),
            30_000
        );
        assert!(reader.entries.capacity() >= 30_000);
        std::fs::write(root.path().join("net/tcp"), proc_tcp(100)).unwrap();
        let calm = reader.census().census.unwrap();
        assert_eq!(
            calm.by_state.get(faultline_series::SocketState::TimeWait),
            100
        );
        assert_eq!(reader.entries().len(), 100);
        assert!(
            reader.entries.capacity() <= 4096,
            "room for {} sockets kept",
            reader.entries.capacity()
        );
    }
}
