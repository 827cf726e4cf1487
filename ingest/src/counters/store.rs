//! The counter store: the latest values, their deltas and rates, the status of every source,
//! and the bounded history — everything `GET /api/v1/counters` and `/metrics` show.
//!
//! The sampler writes one [`NodeSample`] per tick ([`CounterStore::record_sample`]), which
//! appends one history point for every series, task targets included (each with its latest
//! outcome); task outcomes arrive on their own whenever a scrape finishes
//! ([`CounterStore::record_scrape`]) or an OTLP count is received
//! ([`CounterStore::record_task`]). Readers take a
//! [`CountersSnapshot`], a plain serialisable value, so nobody reaches into the store's maps.
//!
//! Readers never hold up the sampler. A snapshot of every series is built under the store's
//! lock (on a busy node charting every port: 12,000 series), so the sampler does not wait
//! for the lock: it leaves its sample (and the port owners read with it) in a short queue
//! and records them only when the lock is free; else whoever takes the lock next — a reader
//! included — records them first, in order, so every reader sees every sample handed in
//! before it asked. The queue holds at most [`MAX_PENDING_SAMPLES`]; past that the sampler
//! waits for the lock (a reader holding it for that many intervals), and nothing is lost.
//!
//! Bounds: ports beyond the top N are summed into "other"; task counters are capped at
//! `max_task_targets` (further targets are rejected and counted); history is bounded by
//! [`History`]. A failed source never shows as zero: its values are absent (`null`) and its
//! status says why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};

use faultline_series::{
    CounterKind, PortSide, ProcessMetric, RuntimeMetric, SeriesKey, SocketState,
};
use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;

use super::config::CountersConfig;
use super::error::CounterError;
use super::history::{History, HistoryCopy, HistoryView, KnownView, RestoreBounds};
use super::outgoing::OutgoingConnections;
use super::owners::PortOwner;
use super::proc_net::{PROTOCOL_COUNTERS, SOCKSTAT_KEYS};
use super::process::ProcessCounters;
use super::reader::CensusReading;
use super::runtime::RuntimeCounters;
use super::saved::{SavedCounters, SavedOwner, SavedTarget};
use super::sockets::{ListenQueue, PortKey, PortMap, SocketCensus, SocketSource, StateCounts};

/// Everything the sampler read in one tick (task scrapes excepted).
#[derive(Debug)]
pub struct NodeSample {
    /// When the sample was taken.
    pub time_unix_ms: i64,
    /// The socket census and which source gave it.
    pub sockets: CensusReading,
    /// `/proc/net/sockstat{,6}`.
    pub sockstat: Result<BTreeMap<String, i64>, CounterError>,
    /// `/proc/net/snmp` + `/proc/net/netstat` (monotonic counters).
    pub protocol: Result<BTreeMap<String, i64>, CounterError>,
    /// Each configured process target, by name.
    pub processes: Vec<(String, Result<ProcessCounters, CounterError>)>,
    /// The agent's own process.
    pub agent_process: Option<ProcessCounters>,
    /// The agent's tokio runtime.
    pub runtime: Option<RuntimeCounters>,
    /// Task scrapes to record with this sample, before its history point (the sampler records
    /// its scrapes on their own as they finish and leaves this empty).
    pub scrapes: Vec<TaskScrape>,
}

/// The process listening on one port, as [`CounterStore::listening_processes`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListeningProcess {
    /// The port.
    pub port: u16,
    /// The configured process target's name, else the process's command name.
    pub name: String,
    /// Its process id, when the census placed the socket.
    pub pid: Option<u32>,
    /// Whether the port is a configured `[[counters.processes]]` target's `listen_port`
    /// (a service port the user named), not just a port its process also holds.
    pub configured: bool,
}

/// The outcome of scraping one task target.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskScrape {
    /// The target name.
    pub target: String,
    /// The source it is shown under (`pprof`, `expvar`, `prometheus`, `http`).
    pub source: String,
    /// The count, or why there is none.
    pub result: Result<f64, String>,
}

/// Whether a source can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Read at the last sample.
    Available,
    /// Not present on this node or not allowed (netlink refused, file missing); a fallback may
    /// be in use.
    Unavailable,
    /// Tried and failed at the last sample (timeout, error status, unparsable answer).
    Failing,
}

/// The status of one counter source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// `sockets.netlink`, `sockets.proc`, `sockstat`, `protocol`, `process.<name>`.
    pub name: String,
    /// Available, unavailable or failing.
    pub status: SourceState,
    /// Why it is not available.
    pub reason: Option<String>,
}

/// A socket count for one state with its change since the previous sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCount {
    /// The state.
    pub state: SocketState,
    /// Sockets in that state.
    pub count: u32,
    /// Change since the previous sample (`None` for the first one).
    pub delta: Option<i64>,
}

/// The sockets of one service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortView {
    /// The service port.
    pub port: u16,
    /// `local` (we serve it) or `remote` (we call it).
    pub side: PortSide,
    /// All sockets of the group.
    pub total: u64,
    /// Change of `total` since the previous sample.
    pub delta: Option<i64>,
    /// Non-zero counts by state.
    pub states: BTreeMap<SocketState, u32>,
}

/// The port groups beyond the top N, summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct OtherPorts {
    /// How many port groups are summed here.
    pub port_groups: usize,
    /// All their sockets.
    pub total: u64,
    /// Non-zero counts by state.
    pub states: BTreeMap<SocketState, u32>,
}

/// The socket part of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketsView {
    /// Which source answered.
    pub source: SocketSource,
    /// All TCP sockets.
    pub total: u64,
    /// Counts by state (every state, zeros included), with deltas.
    pub by_state: Vec<StateCount>,
    /// IPv4 non-zero counts by state.
    pub ipv4: BTreeMap<SocketState, u32>,
    /// IPv6 non-zero counts by state.
    pub ipv6: BTreeMap<SocketState, u32>,
    /// The top N port groups by socket count.
    pub ports: Vec<PortView>,
    /// Everything else.
    pub other: OtherPorts,
    /// Listening sockets: the top N by accept queue fullness, fullest first, then the other
    /// listeners of service ports (a configured `listen_port`, a local port group among the
    /// top N, a port whose queue history is kept), so a quiet service's queue has no holes.
    pub listeners: Vec<ListenQueue>,
    /// Listening sockets left out of `listeners`.
    pub listeners_omitted: usize,
}

/// One protocol counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtocolCounter {
    /// `Tcp RetransSegs`, `TcpExt ListenOverflows`, ...
    pub name: String,
    /// The kernel's running total.
    pub total: i64,
    /// Per second over the last interval (`None` for the first sample or after a reset).
    pub rate_per_sec: Option<f64>,
}

/// One process target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessView {
    /// The target name (`faultline` for the agent itself).
    pub name: String,
    /// The counters, `None` when the process could not be read.
    pub counters: Option<ProcessCounters>,
    /// Open fds as a fraction of the limit.
    pub fd_usage: Option<f64>,
    /// Why the counters are missing.
    pub error: Option<String>,
    /// Its connections to the node's listeners at the newest census that read them (see
    /// [`super::outgoing`]); `None` when none did.
    pub outgoing: Option<OutgoingConnections>,
}

/// One task counter (a target and the source that reports it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    /// The target (service) name.
    pub target: String,
    /// `pprof`, `expvar`, `prometheus`, `otlp`, ...
    pub source: String,
    /// The current count; `None` when the last scrape failed or the value went stale.
    pub value: Option<f64>,
    /// Change since the previous successful reading.
    pub delta: Option<f64>,
    /// Available or failing.
    pub status: SourceState,
    /// Why it is failing.
    pub error: Option<String>,
    /// The last count read successfully, kept for context when failing.
    pub last_value: Option<f64>,
    /// When the last successful reading was taken.
    pub last_success_unix_ms: Option<i64>,
}

/// The agent's runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeView {
    /// The raw counters.
    #[serde(flatten)]
    pub counters: RuntimeCounters,
    /// Fraction of worker time spent busy over the last interval (0..=1).
    pub busy_ratio: Option<f64>,
}

/// How full the store's bounds are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreBounds {
    /// History series kept.
    pub series: usize,
    /// Their bound.
    pub max_series: usize,
    /// Series evicted to stay within it.
    pub series_evicted: u64,
    /// Points the series hold over both rings (each series' points from its first known one
    /// to its last; 4 bytes each), and the room their rings hold, in points.
    pub points: (usize, usize),
    /// Task counters kept and their bound.
    pub task_targets: usize,
    /// The bound on task counters.
    pub max_task_targets: usize,
    /// Task readings rejected because the bound was reached.
    pub task_targets_rejected: u64,
}

/// History at both resolutions. Two blocks are equal when their points are (whatever the
/// generations and sample numbers of the histories they were read from).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryBlock {
    /// One point per sample (15 min at 1 s by default).
    pub seconds: HistoryView,
    /// One point per minute (24 h by default).
    pub minutes: HistoryView,
    /// The history's generation (see [`History::generation`]): a reader keeping the points
    /// it read reads them all again when it changed.
    #[serde(skip)]
    pub generation: u64,
    /// With [`SnapshotOptions::seconds_after`]: the series removed since that sample, which a
    /// reader keeping the points it read leaves out before adding `seconds` (see
    /// [`History::removed_after`]); `None` when the history no longer knows them all (the
    /// reader then reads everything again), or when not asked.
    #[serde(skip)]
    pub removed: Option<Vec<SeriesKey>>,
    /// Number of the newest sample point (see [`History::tick`]).
    #[serde(skip)]
    pub tick: u64,
    /// Sample points the store keeps (`seconds` may hold only the newest of them).
    #[serde(skip)]
    pub sample_points: usize,
    /// With [`SnapshotOptions::seconds_known`]: the per-sample history as it is stored
    /// (`seconds` is then empty).
    #[serde(skip)]
    pub known: Option<KnownView>,
}

impl PartialEq for HistoryBlock {
    fn eq(&self, other: &HistoryBlock) -> bool {
        self.seconds == other.seconds && self.minutes == other.minutes
    }
}

/// What a reader gets: current values, deltas, statuses and (optionally) history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountersSnapshot {
    /// When the last sample was taken (`None` before the first).
    pub time_unix_ms: Option<i64>,
    /// The sampling interval.
    pub interval_ms: u64,
    /// The status of every node source.
    pub sources: Vec<SourceStatus>,
    /// Sockets, when a source could be read.
    pub sockets: Option<SocketsView>,
    /// `/proc/net/sockstat{,6}` values (empty when unavailable).
    pub sockstat: BTreeMap<String, i64>,
    /// TCP protocol counters with rates (empty when unavailable).
    pub protocol: Vec<ProtocolCounter>,
    /// Process targets, the agent itself first.
    pub processes: Vec<ProcessView>,
    /// Task counters.
    pub tasks: Vec<TaskView>,
    /// The agent's runtime.
    pub runtime: Option<RuntimeView>,
    /// The store's bounds.
    pub bounds: StoreBounds,
    /// History, when asked for.
    pub history: Option<HistoryBlock>,
    /// Port groups that left the top N ports while their history is still kept (with
    /// history only; see [`DepartedPorts`]).
    pub departed_ports: Vec<DepartedPorts>,
}

/// Most port groups kept in [`CountersSnapshot::departed_ports`], the highest first.
pub const DEPARTED_PORT_GROUPS: usize = 16;

/// A port group that was among the top N ports during the history but is not any more (a
/// storm that ended, a port that other ports outgrew). The TIME_WAIT storm of ten minutes ago
/// must stay on the chart and visible to the diagnosis, not vanish with its last socket: its
/// port-state series stay in the history, and this names them. Sockets it still has are
/// counted in the other ports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartedPorts {
    /// The service port.
    pub port: u16,
    /// Whether the node served on it or called it.
    pub side: PortSide,
    /// Its highest socket count in one state over the history.
    pub peak: f64,
    /// The states that had sockets during the history, in the kernel's order.
    pub states: Vec<SocketState>,
}

/// What to put in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Include history.
    pub history: bool,
    /// Only history series of this family (all when `None`).
    pub kind: Option<CounterKind>,
    /// At most this many points per resolution (the most recent).
    pub max_points: usize,
    /// Include the per-minute ring (24 h by default) with the per-sample one; without it the
    /// minutes view is empty. A reader of the per-sample history alone (the diagnosis, once a
    /// second) need not copy a day of every series.
    pub minutes: bool,
    /// Only the sample points after this sample number ([`HistoryBlock::tick`] of an earlier
    /// snapshot), for a reader that keeps the points it read: under the store's lock, the
    /// copy is of the new points, not of 15 minutes of every series.
    pub seconds_after: Option<u64>,
    /// The per-sample history as it is stored ([`HistoryBlock::known`], see [`KnownView`])
    /// instead of one slot per sample in `seconds`: for a reader that keeps the whole window
    /// (ignored with `seconds_after`).
    pub seconds_known: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            history: true,
            kind: None,
            max_points: usize::MAX,
            minutes: true,
            seconds_after: None,
            seconds_known: false,
        }
    }
}

impl SnapshotOptions {
    /// Current values only.
    pub fn current_only() -> SnapshotOptions {
        SnapshotOptions {
            history: false,
            ..SnapshotOptions::default()
        }
    }
}

#[derive(Debug)]
struct TaskEntry {
    value: Option<f64>,
    delta: Option<f64>,
    error: Option<String>,
    last_value: Option<f64>,
    last_success_ms: Option<i64>,
    /// OTLP values go stale; scraped ones are refreshed or failed every tick.
    pushed: bool,
}

#[derive(Debug)]
struct Inner {
    time_unix_ms: Option<i64>,
    sources: BTreeMap<String, SourceStatus>,
    sockets: Option<SocketsView>,
    prev_states: Option<StateCounts>,
    prev_ports: PortMap<u64>,
    sockstat: BTreeMap<String, i64>,
    protocol: Vec<ProtocolCounter>,
    prev_protocol: Option<(i64, BTreeMap<String, i64>)>,
    processes: Vec<ProcessView>,
    tasks: BTreeMap<(String, String), TaskEntry>,
    task_rejected: u64,
    runtime: Option<RuntimeView>,
    prev_runtime: Option<(i64, RuntimeCounters)>,
    history: History,
    /// The processes holding the node's listening sockets, as last resolved.
    port_owners: Vec<PortOwner>,
    /// Service ports known from elsewhere than the counters (the services' SERVER spans), at
    /// most [`MAX_SERVICE_PORTS`]: their listen queues are recorded like a configured port's.
    service_ports: BTreeSet<u16>,
    /// This agent's own listening ports (its web and OTLP listeners).
    agent_ports: BTreeSet<u16>,
    /// Who held each listening port when a restored history was saved, until the first
    /// census after the restore compares them with who holds them now.
    restored_owners: Option<BTreeMap<u16, u32>>,
    /// The process ids of each process target when a restored history was saved, until the
    /// target is read again.
    restored_targets: BTreeMap<String, Vec<u32>>,
    /// Changes whenever a snapshot may read otherwise (see [`CounterStore::revision`]).
    revision: u64,
}

/// The socket states of each port group the history keeps a series of, read in one pass over
/// its keys: a state that had sockets within the history is recorded at 0, not left as a gap.
/// A lookup per charted port group and state instead (45,000 a sample at 4,096 port groups)
/// was a third of what recording a sample cost (BENCHMARKS.md).
struct KeptPortStates(Vec<u16>);

impl KeptPortStates {
    fn of(history: &History) -> KeptPortStates {
        let mut states = vec![0u16; 2 * (usize::from(u16::MAX) + 1)];
        for key in history.keys() {
            if let SeriesKey::PortState { port, side, state } = *key {
                states[Self::slot(port, side)] |= Self::bit(state);
            }
        }
        KeptPortStates(states)
    }

    fn slot(port: u16, side: PortSide) -> usize {
        usize::from(port) * 2 + usize::from(side == PortSide::Remote)
    }

    fn bit(state: SocketState) -> u16 {
        1 << (state as u16)
    }

    fn contains(&self, port: u16, side: PortSide, state: SocketState) -> bool {
        self.0[Self::slot(port, side)] & Self::bit(state) != 0
    }
}

/// Most service ports [`CounterStore::watch_service_ports`] keeps: a node runs a few dozen
/// services; a flood of span-claimed ports cannot grow the listen queue series beyond it.
pub const MAX_SERVICE_PORTS: usize = 256;

/// How [`CounterStore::listening_processes`] names this agent's own listeners.
pub const AGENT_LISTENER: &str = "faultline (this agent)";

/// Most samples (and port-owner readings) the sampler leaves for later while a reader holds
/// the store's lock: minutes of samples at the default interval; past it the sampler waits.
pub const MAX_PENDING_SAMPLES: usize = 64;

/// What the sampler handed in while the store's lock was held, in order.
#[derive(Debug)]
enum Pending {
    Owners(Vec<PortOwner>),
    Sample(Box<NodeSample>),
}

/// The thread-safe store of node counters; share it as `Arc<CounterStore>`.
#[derive(Debug)]
pub struct CounterStore {
    interval_ms: u64,
    top_ports: usize,
    max_series: usize,
    max_task_targets: usize,
    otlp_stale_after_ms: i64,
    history_seconds: usize,
    history_minutes: usize,
    /// `[[counters.processes]]` targets found by their listening port: (port, target name).
    configured_ports: Vec<(u16, String)>,
    inner: Mutex<Inner>,
    /// The sampler's readings not recorded yet (see the module docs). Locked only to add or
    /// take them, never while waiting for `inner`.
    pending: Mutex<Vec<Pending>>,
    /// The sample time of the newest judgement that asked for a census
    /// ([`CounterStore::ask_for_census`]) until the sampler takes it up; `i64::MIN` for none.
    census_asked: AtomicI64,
    /// Told of each node sample handed in ([`CounterStore::sampled`]).
    sampled: tokio::sync::Notify,
}

impl CounterStore {
    /// An empty store with the bounds of `config`.
    pub fn new(config: &CountersConfig) -> CounterStore {
        CounterStore {
            interval_ms: config.interval_ms,
            top_ports: config.top_ports.max(1),
            max_series: config.max_series,
            max_task_targets: config.max_task_targets,
            history_seconds: config.history_seconds,
            history_minutes: config.history_minutes,
            otlp_stale_after_ms: i64::try_from(config.otlp_stale_after_ms).unwrap_or(i64::MAX),
            configured_ports: config
                .processes
                .iter()
                .filter_map(|p| Some((p.listen_port?, p.name.clone())))
                .collect(),
            inner: Mutex::new(Inner {
                time_unix_ms: None,
                sources: BTreeMap::new(),
                sockets: None,
                prev_states: None,
                prev_ports: PortMap::default(),
                sockstat: BTreeMap::new(),
                protocol: Vec::new(),
                prev_protocol: None,
                processes: Vec::new(),
                tasks: BTreeMap::new(),
                task_rejected: 0,
                runtime: None,
                prev_runtime: None,
                history: History::new(
                    config.history_seconds,
                    config.history_minutes,
                    config.max_series,
                ),
                port_owners: Vec::new(),
                service_ports: BTreeSet::new(),
                agent_ports: BTreeSet::new(),
                restored_owners: None,
                restored_targets: BTreeMap::new(),
                revision: 0,
            }),
            pending: Mutex::new(Vec::new()),
            census_asked: AtomicI64::new(i64::MIN),
            sampled: tokio::sync::Notify::new(),
        }
    }

    /// Asks the sampler for a fresh socket census at its next tick, even where the CPU budget
    /// would repeat the last one (at most
    /// [`CONFIRMING_CENSUSES_PER_GAP`](super::sampler::CONFIRMING_CENSUSES_PER_GAP) such
    /// censuses per [`CONFIRMING_CENSUS_GAP`](super::sampler::CONFIRMING_CENSUS_GAP)). The diagnosis asks
    /// when a count it must judge was taken only once since it changed: the first census that
    /// shows a TIME-WAIT storm tells only a lower bound of its pace, and on a busy node the
    /// census after it came one budget period (4–7 s) later.
    ///
    /// `judged_unix_ms` is the time of the sample the judgement read: a census taken after it
    /// already answers, and the sampler then takes none (a diagnosis pass that ends after the
    /// next tick began asked a tick late, after the regular census).
    pub fn ask_for_census(&self, judged_unix_ms: i64) {
        self.census_asked
            .fetch_max(judged_unix_ms, Ordering::Relaxed);
    }

    /// The sample time of the judgement that asked for a census since the last call, if one
    /// did (the sampler's tick takes it up).
    pub fn census_asked(&self) -> Option<i64> {
        Some(self.census_asked.swap(i64::MIN, Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    /// The store's lock, with the sampler's pending readings recorded first.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock();
        self.record_pending(&mut inner);
        inner
    }

    /// Hands in one of the sampler's readings: recorded now when the lock is free, else by
    /// whoever takes it next (see the module docs).
    fn hand_in(&self, reading: Pending) {
        let full = {
            let mut pending = self.pending.lock();
            pending.push(reading);
            pending.len() >= MAX_PENDING_SAMPLES
        };
        let inner = if full {
            Some(self.inner.lock())
        } else {
            self.inner.try_lock()
        };
        if let Some(mut inner) = inner {
            self.record_pending(&mut inner);
        }
    }

    /// Records the readings the sampler handed in, in order.
    fn record_pending(&self, inner: &mut Inner) {
        let pending = std::mem::take(&mut *self.pending.lock());
        if !pending.is_empty() {
            inner.revision += 1;
        }
        for reading in pending {
            match reading {
                Pending::Owners(owners) => record_owners(inner, owners),
                Pending::Sample(sample) => self.record(inner, *sample),
            }
        }
    }

    /// The service ports known from elsewhere than the counters (the services' SERVER spans
    /// name where they listen): each sample records their listen queues like a configured
    /// port's, beyond the fullest N. Without it, a span-only service port that is never busy
    /// had its queue recorded only while among the fullest N, with holes just where its
    /// baseline is. Replaces the previous set; at most [`MAX_SERVICE_PORTS`] are kept.
    pub fn watch_service_ports(&self, ports: impl IntoIterator<Item = u16>) {
        let ports: BTreeSet<u16> = ports.into_iter().take(MAX_SERVICE_PORTS).collect();
        let mut inner = self.lock();
        if inner.service_ports != ports {
            inner.service_ports = ports;
            inner.revision += 1;
        }
    }

    /// Records this agent's own listening ports (its web and OTLP listeners): they are named
    /// [`AGENT_LISTENER`] by [`CounterStore::listening_processes`], and the diagnosis keeps
    /// their sockets (the agent's API polls and OTLP posts) out of node activity.
    pub fn set_agent_ports(&self, ports: impl IntoIterator<Item = u16>) {
        let mut inner = self.lock();
        inner.agent_ports = ports.into_iter().collect();
        inner.revision += 1;
    }

    /// A number that changes whenever [`CounterStore::snapshot`] may read otherwise: a sample,
    /// a task count or a port owner recorded, a restore adopted, the watched ports changed.
    /// Equal revisions read alike, so a reader may keep what it built from a snapshot (the
    /// encoded counters document) until the revision changes.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// This agent's own listening ports (see [`CounterStore::set_agent_ports`]).
    pub fn agent_ports(&self) -> Vec<u16> {
        self.lock().agent_ports.iter().copied().collect()
    }

    /// Records which processes hold the node's listening sockets (the sampler resolves them
    /// after each census, see [`super::owners`]).
    ///
    /// The first one after [`CounterStore::restore`] also compares who holds each listening
    /// port with who held it when the history was saved: a port another process holds now
    /// (its service restarted while the agent was down, or the port went to another program)
    /// forgets the restored past of its own sockets and queue, which was another process's.
    pub fn record_port_owners(&self, owners: Vec<PortOwner>) {
        self.hand_in(Pending::Owners(owners));
    }

    /// Who listens on each port, as the counters know it, by port: a configured process
    /// target's `listen_port` (`[[counters.processes]]`, named as configured); else the
    /// process holding the port's listening socket, by its target's name when it is a
    /// configured target's process (its other ports: an admin or debug listener), else by
    /// its command name. Culprit attribution names a callee that sent no span by it.
    pub fn listening_processes(&self) -> Vec<ListeningProcess> {
        let inner = self.lock();
        let target_of = |pid: u32| {
            inner.processes.iter().find(|p| {
                p.name != AGENT_PROCESS
                    && p.counters.as_ref().is_some_and(|c| c.pids.contains(&pid))
            })
        };
        let mut out: BTreeMap<u16, ListeningProcess> = BTreeMap::new();
        for (port, name) in &self.configured_ports {
            let pid = inner
                .port_owners
                .iter()
                .find(|o| o.port == *port)
                .map(|o| o.pid);
            out.insert(
                *port,
                ListeningProcess {
                    port: *port,
                    name: name.clone(),
                    pid,
                    configured: true,
                },
            );
        }
        for owner in &inner.port_owners {
            if out.contains_key(&owner.port) {
                continue;
            }
            let listening = ListeningProcess {
                port: owner.port,
                name: if inner.agent_ports.contains(&owner.port) {
                    AGENT_LISTENER.to_owned()
                } else {
                    target_of(owner.pid).map_or_else(|| owner.process.clone(), |t| t.name.clone())
                },
                pid: Some(owner.pid),
                configured: false,
            };
            out.insert(owner.port, listening);
        }
        out.into_values().collect()
    }

    /// Records a task count received through OTLP runtime metrics (e.g. a Go service's
    /// goroutine count): `target` is the service, `source` where it came from (`otlp`). A value
    /// not refreshed within `otlp_stale_after_ms` is shown as failing. Non-finite values are
    /// recorded as a failure. Returns false when the task bound rejected it.
    ///
    /// `time_unix_nanos` is compared with the sample times of [`CounterStore::record_sample`]
    /// (the agent's clock) to judge staleness: pass the time the count was received, not the
    /// sender's timestamp, whose clock may be off by any amount.
    pub fn record_task(
        &self,
        target: &str,
        source: &str,
        value: f64,
        time_unix_nanos: i64,
    ) -> bool {
        let time_ms = time_unix_nanos.div_euclid(1_000_000);
        let result = if value.is_finite() {
            Ok(value)
        } else {
            Err(format!("non-finite value {value}"))
        };
        let mut inner = self.lock();
        inner.revision += 1;
        self.record_task_result(&mut inner, target, source, result, time_ms, true)
    }

    /// Records the outcome of scraping a task target at `time_unix_ms`: a count, or why there
    /// is none. Returns false when the task bound rejected it.
    pub fn record_scrape(
        &self,
        target: &str,
        source: &str,
        result: Result<f64, String>,
        time_unix_ms: i64,
    ) -> bool {
        let mut inner = self.lock();
        inner.revision += 1;
        self.record_task_result(&mut inner, target, source, result, time_unix_ms, false)
    }

    fn record_task_result(
        &self,
        inner: &mut Inner,
        target: &str,
        source: &str,
        result: Result<f64, String>,
        time_ms: i64,
        pushed: bool,
    ) -> bool {
        // Names can come from OTLP senders: cap them so one sender cannot grow the store.
        let key = (
            truncated(target, MAX_NAME_BYTES),
            truncated(source, MAX_NAME_BYTES),
        );
        if !inner.tasks.contains_key(&key) && inner.tasks.len() >= self.max_task_targets {
            inner.task_rejected += 1;
            return false;
        }
        let entry = inner.tasks.entry(key).or_insert(TaskEntry {
            value: None,
            delta: None,
            error: None,
            last_value: None,
            last_success_ms: None,
            pushed,
        });
        entry.pushed = pushed;
        match result {
            Ok(v) => {
                // An older OTLP point arriving late does not overwrite a newer one.
                if entry.last_success_ms.is_some_and(|t| t > time_ms) {
                    return true;
                }
                entry.delta = entry.last_value.map(|prev| v - prev);
                entry.value = Some(v);
                entry.last_value = Some(v);
                entry.last_success_ms = Some(time_ms);
                entry.error = None;
            }
            Err(why) => {
                entry.value = None;
                entry.delta = None;
                entry.error = Some(why);
            }
        }
        true
    }

    /// Records one sample of the node's sources and appends it to the history. Never waits
    /// for a reader (see the module docs).
    pub fn record_sample(&self, sample: NodeSample) {
        self.hand_in(Pending::Sample(Box::new(sample)));
        self.sampled.notify_one();
    }

    /// How often the sampler records a node sample (`[counters] interval_ms`).
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.interval_ms)
    }

    /// Resolves once a node sample was recorded since the last call resolved (at once when
    /// one was recorded meanwhile): a reader that judges each sample (the diagnosis) reads it
    /// as soon as it is there, not up to an interval later. Meant for one waiter.
    pub async fn sampled(&self) {
        self.sampled.notified().await;
    }

    fn record(&self, inner: &mut Inner, sample: NodeSample) {
        let now = sample.time_unix_ms;
        inner.time_unix_ms = Some(now);
        for scrape in sample.scrapes {
            self.record_task_result(
                inner,
                &scrape.target,
                &scrape.source,
                scrape.result,
                now,
                false,
            );
        }
        let mut series: Vec<(SeriesKey, f64)> = Vec::new();
        let mut outgoing = sample.sockets.outgoing;

        // Sockets.
        match sample.sockets.census {
            Ok(census) => {
                let source = census.source;
                set_source(
                    inner,
                    "sockets.netlink",
                    match (&sample.sockets.netlink_problem, source) {
                        (None, SocketSource::Netlink) => {
                            (SourceState::Available, sample.sockets.budget_note.clone())
                        }
                        (None, SocketSource::ProcNet) => (
                            SourceState::Unavailable,
                            Some("not used (socket_source = proc)".into()),
                        ),
                        (Some(why), _) => (
                            SourceState::Unavailable,
                            Some(format!("{why}; using /proc/net/tcp")),
                        ),
                    },
                );
                if source == SocketSource::ProcNet {
                    let note = sample.sockets.budget_note.clone();
                    set_source(inner, "sockets.proc", (SourceState::Available, note));
                } else {
                    inner.sources.remove("sockets.proc");
                }
                let view = self.sockets_view(inner, &census, &mut series);
                inner.sockets = Some(view);
                // When the socket counts were really taken: a change between two censuses
                // is measured over the time between them, not between samples.
                let age = sample
                    .sockets
                    .repeats_unix_ms
                    .map_or(0, |counted| now.saturating_sub(counted).max(0));
                series.push((
                    SeriesKey::Runtime {
                        metric: RuntimeMetric::SocketCensusAge,
                    },
                    age as f64,
                ));
            }
            Err(e) => {
                let name = match sample.sockets.netlink_problem {
                    Some(_) if !matches!(e, CounterError::Read { .. }) => "sockets.netlink",
                    _ => "sockets.proc",
                };
                set_source(inner, name, (SourceState::Failing, Some(e.to_string())));
                inner.sockets = None;
                inner.prev_states = None;
                inner.prev_ports.clear();
            }
        }

        // sockstat.
        match sample.sockstat {
            Ok(values) => {
                set_source(inner, "sockstat", (SourceState::Available, None));
                for key in SOCKSTAT_KEYS {
                    if let Some(v) = values.get(*key) {
                        let key = SeriesKey::Sockstat {
                            key: (*key).to_owned(),
                        };
                        series.push((key, *v as f64));
                    }
                }
                inner.sockstat = values;
            }
            Err(e) => {
                set_source(inner, "sockstat", unavailable_or_failing(&e));
                inner.sockstat.clear();
            }
        }

        // Protocol counters as rates.
        match sample.protocol {
            Ok(values) => {
                set_source(inner, "protocol", (SourceState::Available, None));
                let prev = inner.prev_protocol.take();
                let mut out = Vec::new();
                for key in PROTOCOL_COUNTERS {
                    let Some(&total) = values.get(*key) else {
                        continue;
                    };
                    let rate = prev.as_ref().and_then(|(t, p)| {
                        let before = *p.get(*key)?;
                        let secs = (now - t) as f64 / 1000.0;
                        (total >= before && secs > 0.0).then(|| (total - before) as f64 / secs)
                    });
                    if let Some(r) = rate {
                        let key = SeriesKey::ProtocolRate {
                            key: (*key).to_owned(),
                        };
                        series.push((key, r));
                    }
                    out.push(ProtocolCounter {
                        name: (*key).to_string(),
                        total,
                        rate_per_sec: rate,
                    });
                }
                if let Some(estab) = values.get("Tcp CurrEstab") {
                    out.push(ProtocolCounter {
                        name: "Tcp CurrEstab".into(),
                        total: *estab,
                        rate_per_sec: None,
                    });
                }
                inner.protocol = out;
                inner.prev_protocol = Some((now, values));
            }
            Err(e) => {
                set_source(inner, "protocol", unavailable_or_failing(&e));
                inner.protocol.clear();
                inner.prev_protocol = None;
            }
        }

        // Processes: the agent first, then the targets.
        let mut processes = Vec::new();
        if let Some(me) = sample.agent_process {
            processes.push((AGENT_PROCESS.to_string(), Ok(me)));
        }
        processes.extend(sample.processes);
        inner.processes.clear();
        for (name, result) in processes {
            let source_name = format!("process.{name}");
            match result {
                Ok(c) => {
                    set_source(inner, &source_name, (SourceState::Available, None));
                    forget_if_restarted(inner, &name, &c.pids);
                    for (metric, v) in [
                        (ProcessMetric::OpenFds, c.open_fds),
                        (ProcessMetric::Threads, c.threads),
                        (ProcessMetric::RssBytes, c.rss_bytes),
                    ] {
                        let key = SeriesKey::Process {
                            name: name.clone(),
                            metric,
                        };
                        series.push((key, v as f64));
                    }
                    let fd_usage = c
                        .fd_limit
                        .filter(|&l| l > 0)
                        .map(|l| c.open_fds as f64 / l as f64);
                    let outgoing = outgoing.remove(&name);
                    inner.processes.push(ProcessView {
                        name,
                        counters: Some(c),
                        fd_usage,
                        error: None,
                        outgoing,
                    });
                }
                Err(e) => {
                    let status = match e {
                        CounterError::NoProcess(_) => SourceState::Unavailable,
                        _ => SourceState::Failing,
                    };
                    set_source(inner, &source_name, (status, Some(e.to_string())));
                    inner.processes.push(ProcessView {
                        name,
                        counters: None,
                        fd_usage: None,
                        error: Some(e.to_string()),
                        outgoing: None,
                    });
                }
            }
        }

        // Runtime.
        if let Some(rt) = sample.runtime {
            let busy_ratio = inner.prev_runtime.and_then(|(t, prev)| {
                let wall = (now - t) as f64 / 1000.0 * rt.workers as f64;
                (wall > 0.0 && rt.busy_seconds_total >= prev.busy_seconds_total)
                    .then(|| ((rt.busy_seconds_total - prev.busy_seconds_total) / wall).min(1.0))
            });
            let runtime = |metric| SeriesKey::Runtime { metric };
            series.push((runtime(RuntimeMetric::AliveTasks), rt.alive_tasks as f64));
            series.push((
                runtime(RuntimeMetric::GlobalQueueDepth),
                rt.global_queue_depth as f64,
            ));
            if let Some(b) = busy_ratio {
                series.push((runtime(RuntimeMetric::BusyRatio), b));
            }
            inner.runtime = Some(RuntimeView {
                counters: rt,
                busy_ratio,
            });
            inner.prev_runtime = Some((now, rt));
        }

        // Tasks: stale pushed values fail; every good value is a history point.
        let stale_after = self.otlp_stale_after_ms;
        for ((target, source), entry) in inner.tasks.iter_mut() {
            if entry.pushed {
                if let Some(t) = entry.last_success_ms {
                    if entry.value.is_some() && now.saturating_sub(t) > stale_after {
                        entry.value = None;
                        entry.delta = None;
                        entry.error = Some(format!("no update for {} s", (now - t) / 1000));
                    }
                }
            }
            if let Some(v) = entry.value {
                let key = SeriesKey::Task {
                    target: target.clone(),
                    source: source.clone(),
                };
                series.push((key, v));
            }
        }

        inner.history.record(now, &series);
    }

    /// Builds the socket view (top N, deltas) and pushes the socket series.
    fn sockets_view(
        &self,
        inner: &mut Inner,
        census: &SocketCensus,
        series: &mut Vec<(SeriesKey, f64)>,
    ) -> SocketsView {
        let by_state = SocketState::ALL
            .into_iter()
            .map(|s| {
                let count = census.by_state.get(s);
                series.push((SeriesKey::NodeState { state: s }, f64::from(count)));
                StateCount {
                    state: s,
                    count,
                    delta: inner
                        .prev_states
                        .map(|p| i64::from(count) - i64::from(p.get(s))),
                }
            })
            .collect();
        // Busiest first, each group's total summed once (6,000 groups on a busy node).
        let mut groups: Vec<(u64, &PortKey, &StateCounts)> = census
            .by_port
            .iter()
            .map(|(key, counts)| (counts.total(), key, counts))
            .collect();
        groups.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let kept_states = KeptPortStates::of(&inner.history);
        let mut ports = Vec::new();
        let mut other = OtherPorts::default();
        let mut other_counts = StateCounts::default();
        let had_prev = inner.prev_states.is_some();
        // A service's port groups are kept beyond the busiest N, on both sides: on a node where
        // other programs churn thousands of sockets, a quiet service port was summed into
        // "other" until its own fault made it big, so its series began with the fault, without
        // a baseline, and the fault went unjudged (a TIME-WAIT storm towards the demo's
        // inventory at 285 sockets when first recorded).
        let services: BTreeSet<u16> = self
            .configured_ports
            .iter()
            .map(|(port, _)| *port)
            .chain(inner.service_ports.iter().copied())
            .collect();
        for (i, &(total, key, counts)) in groups.iter().enumerate() {
            if i < self.top_ports || services.contains(&key.port) {
                let (port, side) = (key.port, key.side);
                series.push((SeriesKey::PortTotal { port, side }, total as f64));
                for state in SocketState::ALL {
                    let n = counts.get(state);
                    if n > 0 || kept_states.contains(port, side, state) {
                        series.push((SeriesKey::PortState { port, side, state }, f64::from(n)));
                    }
                }
                let delta = had_prev
                    .then(|| total as i64 - inner.prev_ports.get(key).copied().unwrap_or(0) as i64);
                ports.push(PortView {
                    port: key.port,
                    side: key.side,
                    total,
                    delta,
                    states: counts.non_zero().collect(),
                });
            } else {
                other.port_groups += 1;
                other_counts.add_all(counts);
            }
        }
        other.total = other_counts.total();
        other.states = other_counts.non_zero().collect();
        series.push((SeriesKey::OtherPortsTotal, other.total as f64));

        let mut listeners = census.listeners.clone();
        listeners.sort_by(|a, b| {
            fullness(b)
                .total_cmp(&fullness(a))
                .then(b.queue.cmp(&a.queue))
                .then(a.local.port().cmp(&b.local.port()))
        });
        // Beyond the fullest N, a service's listeners are kept too: a quiet listener leaves
        // the top N, and its queue's history would have holes just where its baseline is
        // (the listen-overflow fault's queue was unjudged: "17 of the 30 baseline points
        // needed are known").
        let rest = listeners.split_off(self.top_ports.min(listeners.len()));
        let mut kept = listeners;
        let service_ports: BTreeSet<u16> = kept
            .iter()
            .map(|l| l.local.port())
            .chain(self.configured_ports.iter().map(|(port, _)| *port))
            .chain(inner.service_ports.iter().copied())
            .chain(
                ports
                    .iter()
                    .filter(|p| p.side == PortSide::Local)
                    .map(|p| p.port),
            )
            .collect();
        let (also, omitted): (Vec<ListenQueue>, Vec<ListenQueue>) =
            rest.into_iter().partition(|l| {
                let port = l.local.port();
                service_ports.contains(&port)
                    || inner.history.contains(&SeriesKey::ListenQueue { port })
            });
        kept.extend(also);
        let listeners = kept;
        let listeners_omitted = omitted.len();
        let mut queue_by_port: BTreeMap<u16, u32> = BTreeMap::new();
        for l in &listeners {
            *queue_by_port.entry(l.local.port()).or_default() += l.queue;
        }
        for (port, queue) in queue_by_port {
            series.push((SeriesKey::ListenQueue { port }, f64::from(queue)));
        }

        inner.prev_states = Some(census.by_state);
        inner.prev_ports = census
            .by_port
            .iter()
            .map(|(k, c)| (*k, c.total()))
            .collect();
        SocketsView {
            source: census.source,
            total: census.by_state.total(),
            by_state,
            ipv4: census.ipv4.non_zero().collect(),
            ipv6: census.ipv6.non_zero().collect(),
            ports,
            other,
            listeners,
            listeners_omitted,
        }
    }

    /// How many minute points the history keeps per series (`history_minutes`).
    pub fn minute_capacity(&self) -> usize {
        self.history_minutes
    }

    /// Copies what a save writes (see [`super::saved`]), under the store's lock for no longer
    /// than bulk copies take: the sample points of the last `seconds_ms`, the closed minutes
    /// after `minutes_after_unix_ms` (`None`: all of them), of every series but the agent's
    /// own (its process and runtime: the next start is another process), with who holds the
    /// listening ports and the process targets' ids now. Encoding and writing are the
    /// caller's, away from the lock: the sampler is never held up by them.
    pub fn copy_for_save(&self, seconds_ms: i64, minutes_after_unix_ms: Option<i64>) -> SaveCopy {
        let inner = self.lock();
        let newest = newest_sample(&inner);
        let since = newest.map_or(i64::MIN, |t| t.saturating_sub(seconds_ms));
        SaveCopy {
            time_unix_ms: newest,
            history: inner
                .history
                .copy(not_the_agents_own, since, minutes_after_unix_ms),
            owners: saved_owners(&inner),
            targets: saved_targets(&inner),
        }
    }

    /// The history worth keeping across a restart, as one value (see [`super::saved`]): the
    /// sample points of the last `seconds_ms` and every closed minute, of every series but
    /// the agent's own, with who held the listening ports and the process targets' ids now.
    /// The whole value is built under the store's lock: the agent saves through
    /// [`CounterStore::copy_for_save`] instead.
    pub fn save(&self, seconds_ms: i64) -> SavedCounters {
        let inner = self.lock();
        let since = newest_sample(&inner).map_or(i64::MIN, |t| t.saturating_sub(seconds_ms));
        SavedCounters {
            history: inner.history.save(not_the_agents_own, since),
            owners: saved_owners(&inner),
            targets: saved_targets(&inner),
            unknown_series: 0,
        }
    }

    /// Restores a history saved by a previous run, as of `now_unix_ms`:
    /// [`CounterStore::prepare_restore`] then [`CounterStore::adopt`].
    pub fn restore(&self, saved: SavedCounters, now_unix_ms: i64) -> Result<Restored, String> {
        self.adopt(self.prepare_restore(saved, now_unix_ms)?)
    }

    /// Builds the history that `saved` describes, as of `now_unix_ms`, without touching the
    /// store (no lock: a large history is rebuilt while the sampler and the API go on): the
    /// sample points of the last `history_seconds` intervals, the minutes of the last
    /// `history_minutes`, nothing after now. [`CounterStore::adopt`] puts it in place.
    pub fn prepare_restore(
        &self,
        saved: SavedCounters,
        now_unix_ms: i64,
    ) -> Result<PreparedRestore, String> {
        let (seconds_from, minutes_from) = self.restore_from(now_unix_ms);
        let mut history = History::new(self.history_seconds, self.history_minutes, self.max_series);
        let (series, sample_points, minute_points) =
            history.restore(saved.history, seconds_from, minutes_from, now_unix_ms)?;
        Ok(PreparedRestore {
            history,
            owners: saved.owners.iter().map(|o| (o.port, o.pid)).collect(),
            targets: saved
                .targets
                .into_iter()
                .map(|t| (t.name, t.pids))
                .collect(),
            restored: Restored {
                series,
                sample_points,
                minute_points,
                unknown_series: saved.unknown_series,
            },
        })
    }

    /// What a restore as of `now_unix_ms` ([`CounterStore::prepare_restore`]) keeps of a
    /// saved history with these axes: which sample times, which minutes, and at most how many
    /// series. A reader of a saved history builds no more than this.
    pub fn restore_bounds(
        &self,
        second_times: &[i64],
        minute_times: &[i64],
        now_unix_ms: i64,
    ) -> RestoreBounds {
        let (seconds_from, minutes_from) = self.restore_from(now_unix_ms);
        History::new(self.history_seconds, self.history_minutes, self.max_series).restore_bounds(
            second_times,
            minute_times,
            seconds_from,
            minutes_from,
            now_unix_ms,
        )
    }

    /// The oldest sample time and minute a restore as of `now_unix_ms` keeps.
    fn restore_from(&self, now_unix_ms: i64) -> (i64, i64) {
        let span = |points: usize, step_ms: u64| {
            i64::try_from(points as u128 * u128::from(step_ms)).unwrap_or(i64::MAX)
        };
        (
            now_unix_ms.saturating_sub(span(self.history_seconds, self.interval_ms)),
            now_unix_ms.saturating_sub(span(self.history_minutes, 60_000)),
        )
    }

    /// Puts a restored history in place. The samples recorded since the agent started (the
    /// history is restored in the background) follow its points on the same axes; the time
    /// the agent was down is a gap, never a zero. Who held each listening port and each
    /// process target's ids when it was saved are compared with who holds them now — at
    /// once when they are known already, else at the first census and reading (see
    /// [`CounterStore::record_port_owners`]): a restored past that was another process's is
    /// forgotten. Refused (nothing changed) when a sample recorded since is not newer than
    /// the restored ones.
    pub fn adopt(&self, prepared: PreparedRestore) -> Result<Restored, String> {
        let PreparedRestore {
            mut history,
            owners,
            mut targets,
            restored,
        } = prepared;
        let mut inner = self.lock();
        if inner.time_unix_ms.is_some() {
            // Sampled already: the comparisons are made now, on the restored series only,
            // so the new owner's own points stay.
            forget_moved_ports(&mut history, &owners, &inner.port_owners);
            for p in &inner.processes {
                if let (Some(before), Some(now)) = (targets.remove(&p.name), &p.counters) {
                    forget_restarted_target(&mut history, &p.name, &before, &now.pids);
                }
            }
            history.absorb(&inner.history)?;
            inner.restored_owners = None;
        } else {
            inner.restored_owners = Some(owners);
        }
        history.follows(&inner.history);
        inner.history = history;
        inner.restored_targets = targets;
        inner.revision += 1;
        Ok(restored)
    }

    /// The current values, statuses and (per `options`) history.
    pub fn snapshot(&self, options: &SnapshotOptions) -> CountersSnapshot {
        let inner = self.lock();
        let tasks = inner
            .tasks
            .iter()
            .map(|((target, source), e)| TaskView {
                target: target.clone(),
                source: source.clone(),
                value: e.value,
                delta: e.delta,
                status: if e.value.is_some() {
                    SourceState::Available
                } else {
                    SourceState::Failing
                },
                error: match (&e.error, e.value) {
                    (Some(err), _) => Some(err.clone()),
                    (None, None) => Some("no reading yet".into()),
                    (None, Some(_)) => None,
                },
                last_value: e.last_value,
                last_success_unix_ms: e.last_success_ms,
            })
            .collect();
        let keep = |key: &SeriesKey| options.kind.is_none_or(|kind| key.kind() == kind);
        let resolution = self.interval_ms.div_ceil(1000).max(1);
        // The series are copied under the lock and put in order after it is released.
        let known = (options.history && options.seconds_known && options.seconds_after.is_none())
            .then(|| inner.history.seconds_known(keep));
        let views = options.history.then(|| {
            let seconds = match options.seconds_after {
                Some(after) => inner.history.seconds_after_unsorted(
                    keep,
                    after,
                    options.max_points,
                    resolution,
                ),
                None if known.is_some() => inner.history.seconds_unsorted(|_| false, 0, resolution),
                None => inner
                    .history
                    .seconds_unsorted(keep, options.max_points, resolution),
            };
            let minutes = options
                .minutes
                .then(|| inner.history.minutes_unsorted(keep, options.max_points));
            (seconds, minutes)
        });
        let history = options.history.then(|| HistoryBlock {
            seconds: HistoryView {
                resolution_seconds: resolution,
                times_unix_ms: Vec::new(),
                series: BTreeMap::new(),
            },
            minutes: HistoryView {
                resolution_seconds: 60,
                times_unix_ms: Vec::new(),
                series: BTreeMap::new(),
            },
            generation: inner.history.generation(),
            removed: options
                .seconds_after
                .and_then(|after| inner.history.removed_after(keep, after)),
            tick: inner.history.tick(),
            sample_points: inner.history.sample_points(),
            known,
        });
        let departed_ports = match (&inner.sockets, options.history) {
            (Some(view), true) => departed_ports(&inner.history, view),
            _ => Vec::new(),
        };
        let mut snapshot = CountersSnapshot {
            departed_ports,
            time_unix_ms: inner.time_unix_ms,
            interval_ms: self.interval_ms,
            sources: inner.sources.values().cloned().collect(),
            sockets: inner.sockets.clone(),
            sockstat: inner.sockstat.clone(),
            protocol: inner.protocol.clone(),
            processes: inner.processes.clone(),
            tasks,
            runtime: inner.runtime.clone(),
            bounds: StoreBounds {
                series: inner.history.len(),
                max_series: self.max_series,
                series_evicted: inner.history.evicted(),
                points: inner.history.stored_points(),
                task_targets: inner.tasks.len(),
                max_task_targets: self.max_task_targets,
                task_targets_rejected: inner.task_rejected,
            },
            history,
        };
        drop(inner);
        if let (Some(block), Some((seconds, minutes))) = (&mut snapshot.history, views) {
            block.seconds = seconds.sorted();
            if let Some(minutes) = minutes {
                block.minutes = minutes.sorted();
            }
        }
        snapshot
    }
}

pub use faultline_series::AGENT_PROCESS;

/// What a restore brought back (see [`CounterStore::restore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Series restored.
    pub series: usize,
    /// Sample points restored (on the shared axis).
    pub sample_points: usize,
    /// Minute points restored (on the shared axis).
    pub minute_points: usize,
    /// Series left out because their keys are unknown to this version.
    pub unknown_series: usize,
}

/// Forgets the restored past of process target `name` when none of its process ids is one it
/// had when the history was saved: its service started again while the agent was down.
/// Records who holds the listening ports (see [`CounterStore::record_port_owners`]).
fn record_owners(inner: &mut Inner, owners: Vec<PortOwner>) {
    if let Some(before) = inner.restored_owners.take() {
        forget_moved_ports(&mut inner.history, &before, &owners);
    }
    inner.port_owners = owners;
}

fn forget_if_restarted(inner: &mut Inner, name: &str, pids: &[u32]) {
    if let Some(before) = inner.restored_targets.remove(name) {
        forget_restarted_target(&mut inner.history, name, &before, pids);
    }
}

/// Forgets the series of `history` that are process target `name`'s when none of its process
/// ids now (`pids`) is one it had `before`.
fn forget_restarted_target(history: &mut History, name: &str, before: &[u32], pids: &[u32]) {
    if before.is_empty() || pids.is_empty() || pids.iter().any(|p| before.contains(p)) {
        return;
    }
    let n = history.forget(|key| matches!(key, SeriesKey::Process { name: n, .. } if n == name));
    tracing::info!(
        "{name} runs as another process than before the restart: {n} restored series of it \
         forgotten"
    );
}

/// Forgets the series of `history` of the ports that another process holds `now` than held
/// them `before` (port -> pid): their sockets and queue (local side).
fn forget_moved_ports(history: &mut History, before: &BTreeMap<u16, u32>, now: &[PortOwner]) {
    let moved: BTreeSet<u16> = now
        .iter()
        .filter(|o| before.get(&o.port).is_some_and(|&pid| pid != o.pid))
        .map(|o| o.port)
        .collect();
    if moved.is_empty() {
        return;
    }
    let n = history.forget(|key| match key {
        SeriesKey::PortState {
            port,
            side: PortSide::Local,
            ..
        }
        | SeriesKey::PortTotal {
            port,
            side: PortSide::Local,
        }
        | SeriesKey::ListenQueue { port } => moved.contains(port),
        _ => false,
    });
    tracing::info!(
        "ports {moved:?} are held by another process than before the restart: {n} restored \
         series of theirs forgotten"
    );
}

/// The time of the newest sample point: the last sample, or the newest restored point when
/// nothing was sampled since a restore.
fn newest_sample(inner: &Inner) -> Option<i64> {
    inner
        .time_unix_ms
        .or_else(|| inner.history.newest_sample_time())
}

/// The series a save keeps: all but the agent's own process and runtime (the next start is
/// another process).
fn not_the_agents_own(key: &SeriesKey) -> bool {
    match key {
        SeriesKey::Runtime { .. } => false,
        SeriesKey::Process { name, .. } => name != AGENT_PROCESS,
        _ => true,
    }
}

fn saved_owners(inner: &Inner) -> Vec<SavedOwner> {
    inner
        .port_owners
        .iter()
        .map(|o| SavedOwner {
            port: o.port,
            pid: o.pid,
        })
        .collect()
}

fn saved_targets(inner: &Inner) -> Vec<SavedTarget> {
    inner
        .processes
        .iter()
        .filter(|p| p.name != AGENT_PROCESS)
        .filter_map(|p| {
            Some(SavedTarget {
                name: p.name.clone(),
                pids: p.counters.as_ref()?.pids.clone(),
            })
        })
        .collect()
}

/// What a save copies from the store (see [`CounterStore::copy_for_save`]).
#[derive(Debug, Clone, Default)]
pub struct SaveCopy {
    /// The time of the newest sample, if any.
    pub time_unix_ms: Option<i64>,
    /// The points.
    pub history: HistoryCopy,
    /// Who holds each listening port.
    pub owners: Vec<SavedOwner>,
    /// The process ids of each process target.
    pub targets: Vec<SavedTarget>,
}

/// A restored history built away from the store, to put in place with
/// [`CounterStore::adopt`].
#[derive(Debug)]
pub struct PreparedRestore {
    history: History,
    owners: BTreeMap<u16, u32>,
    targets: BTreeMap<String, Vec<u32>>,
    restored: Restored,
}

impl PreparedRestore {
    /// What it brings back.
    pub fn restored(&self) -> Restored {
        self.restored
    }
}

/// The port groups of `history` not among the current top ports of `view` whose states had a
/// socket, at most [`DEPARTED_PORT_GROUPS`], the highest peak first.
fn departed_ports(history: &History, view: &SocketsView) -> Vec<DepartedPorts> {
    let current: BTreeSet<(u16, PortSide)> = view.ports.iter().map(|p| (p.port, p.side)).collect();
    let mut groups: BTreeMap<(u16, PortSide), DepartedPorts> = BTreeMap::new();
    let departed = |key: &SeriesKey| matches!(key, SeriesKey::PortState { port, side, .. } if !current.contains(&(*port, *side)));
    for (key, peak) in history.peaks(departed) {
        let (&SeriesKey::PortState { port, side, state }, Some(peak)) = (key, peak) else {
            continue;
        };
        if peak <= 0.0 || current.contains(&(port, side)) {
            continue;
        }
        let group = groups.entry((port, side)).or_insert(DepartedPorts {
            port,
            side,
            peak: 0.0,
            states: Vec::new(),
        });
        group.peak = group.peak.max(f64::from(peak));
        group.states.push(state);
    }
    let mut ranked: Vec<DepartedPorts> = groups.into_values().collect();
    for group in &mut ranked {
        group.states.sort();
    }
    ranked.sort_by(|a, b| b.peak.total_cmp(&a.peak));
    ranked.truncate(DEPARTED_PORT_GROUPS);
    ranked
}

/// The longest task target or source name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// `s` cut to at most `max` bytes on a character boundary.
fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// How full an accept queue is, for ordering (a queue at its backlog sorts first).
fn fullness(l: &ListenQueue) -> f64 {
    match l.backlog {
        Some(b) if b > 0 => f64::from(l.queue) / f64::from(b),
        _ => 0.0,
    }
}

fn set_source(inner: &mut Inner, name: &str, (status, reason): (SourceState, Option<String>)) {
    inner.sources.insert(
        name.to_string(),
        SourceStatus {
            name: name.to_string(),
            status,
            reason,
        },
    );
}

/// A missing file is "unavailable" (not on this kernel, not mounted); anything else failed.
fn unavailable_or_failing(e: &CounterError) -> (SourceState, Option<String>) {
    let status = match e {
        CounterError::Read { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            SourceState::Unavailable
        }
        _ => SourceState::Failing,
    };
    (status, Some(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::reader::CensusReading;
    use crate::counters::sockets::{entry, SocketEntry, DEFAULT_EPHEMERAL_PORTS};

    fn sample(time: i64, entries: &[SocketEntry], protocol: &[(&str, i64)]) -> NodeSample {
        let census =
            SocketCensus::from_entries(SocketSource::Netlink, entries, &DEFAULT_EPHEMERAL_PORTS);
        NodeSample {
            time_unix_ms: time,
            sockets: CensusReading::of(Ok(census)),
            sockstat: Ok(BTreeMap::from([("TCP tw".to_string(), 3)])),
            protocol: Ok(protocol.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            processes: Vec::new(),
            agent_process: None,
            runtime: None,
            scrapes: Vec::new(),
        }
    }

    #[test]
    fn a_reader_holding_the_store_never_holds_up_the_sampler() {
        let store = std::sync::Arc::new(CounterStore::new(&CountersConfig::default()));
        let tw = |s: &CountersSnapshot| s.history.as_ref().map(|h| h.seconds.times_unix_ms.clone());
        store.record_sample(sample(1_000, &[], &[]));
        // A reader building a document of every series of a busy node holds the lock for
        // seconds; meanwhile the sampler hands in its next samples and goes on.
        let reading = store.inner.lock();
        let (done, finished) = std::sync::mpsc::channel();
        let sampler = {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                store.record_port_owners(Vec::new());
                store.record_sample(sample(2_000, &[], &[]));
                store.record_sample(sample(3_000, &[], &[]));
                let _ = done.send(());
            })
        };
        let held_up = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_err();
        drop(reading);
        let _ = sampler.join();
        assert!(!held_up, "the sampler waited for the reader");
        // The next reader sees every sample handed in, in order.
        let snap = store.snapshot(&SnapshotOptions::default());
        assert_eq!(tw(&snap), Some(vec![1_000, 2_000, 3_000]));
        assert_eq!(snap.time_unix_ms, Some(3_000));
    }

    #[test]
    fn hostile_task_names_are_capped() {
        let store = CounterStore::new(&CountersConfig::default());
        let long = "é".repeat(1000);
        assert!(store.record_task(&long, "otlp", 1.0, 0));
        let snap = store.snapshot(&SnapshotOptions::current_only());
        assert!(snap.tasks[0].target.len() <= MAX_NAME_BYTES);
        assert!(snap.tasks[0].target.starts_with('é'));
    }

    #[test]
    fn each_sample_says_how_old_its_socket_counts_are() {
        // Counted at 1 s and 2 s; the samples at 3 s and 4 s repeat the census of 2 s (the
        // CPU budget stretched the census interval).
        let store = CounterStore::new(&CountersConfig::default());
        let entries = [entry(SocketState::TimeWait, 40000, 8080)];
        for t in [1_000, 2_000, 3_000, 4_000] {
            let mut s = sample(t, &entries, &[]);
            s.sockets.repeats_unix_ms = (t > 2_000).then_some(2_000);
            store.record_sample(s);
        }
        let snap = store.snapshot(&SnapshotOptions::default());
        let history = snap.history.as_ref().expect("history");
        let age = SeriesKey::Runtime {
            metric: RuntimeMetric::SocketCensusAge,
        };
        assert_eq!(
            history.seconds.series[&age],
            vec![Some(0.0), Some(0.0), Some(1_000.0), Some(2_000.0)]
        );
    }

    #[test]
    fn top_ports_other_deltas_and_rates() {
        let config = CountersConfig {
            top_ports: 2,
            ..CountersConfig::default()
        };
        let store = CounterStore::new(&config);
        // 8080: 5 TIME_WAIT outbound; 5432: 3 ESTABLISHED outbound; 9000 and 9001: 1 each.
        let mut entries: Vec<SocketEntry> = (0..5)
            .map(|i| entry(SocketState::TimeWait, 40000 + i, 8080))
            .collect();
        entries.extend((0..3).map(|i| entry(SocketState::Established, 41000 + i, 5432)));
        entries.push(entry(SocketState::Established, 42000, 9000));
        entries.push(entry(SocketState::SynSent, 42001, 9001));
        store.record_sample(sample(
            60_000,
            &entries,
            &[("TcpExt ListenOverflows", 100), ("Tcp RetransSegs", 10)],
        ));
        entries.extend((0..4).map(|i| entry(SocketState::TimeWait, 43000 + i, 8080)));
        store.record_sample(sample(
            62_000,
            &entries,
            &[("TcpExt ListenOverflows", 140), ("Tcp RetransSegs", 10)],
        ));

        let snap = store.snapshot(&SnapshotOptions::default());
        let sockets = snap
            .sockets
            .as_ref()
            .unwrap_or_else(|| panic!("no sockets"));
        assert_eq!(sockets.ports.len(), 2);
        assert_eq!(
            (sockets.ports[0].port, sockets.ports[0].side),
            (8080, PortSide::Remote)
        );
        assert_eq!(sockets.ports[0].total, 9);
        assert_eq!(sockets.ports[0].delta, Some(4));
        assert_eq!(sockets.ports[1].port, 5432);
        assert_eq!(sockets.other.port_groups, 2);
        assert_eq!(sockets.other.total, 2);
        let tw = sockets
            .by_state
            .iter()
            .find(|s| s.state == SocketState::TimeWait)
            .map(|s| (s.count, s.delta));
        assert_eq!(tw, Some((9, Some(4))));
        let overflow = snap
            .protocol
            .iter()
            .find(|p| p.name == "TcpExt ListenOverflows")
            .and_then(|p| p.rate_per_sec);
        assert_eq!(overflow, Some(20.0));

        let history = snap
            .history
            .as_ref()
            .unwrap_or_else(|| panic!("no history"));
        let tw_8080 = SeriesKey::PortState {
            port: 8080,
            side: PortSide::Remote,
            state: SocketState::TimeWait,
        };
        assert_eq!(history.seconds.series[&tw_8080], vec![Some(5.0), Some(9.0)]);
        let overflows = SeriesKey::ProtocolRate {
            key: "TcpExt ListenOverflows".into(),
        };
        assert_eq!(history.seconds.series[&overflows], vec![None, Some(20.0)]);
        // The first minute closed when the second sample came in a new minute? Both are in
        // minute 1 (60 s..120 s): no closed minute yet.
        assert!(history.minutes.times_unix_ms.is_empty());

        // The snapshot serialises with the series vocabulary's names (and typed keys).
        let json = serde_json::to_string(&snap).unwrap_or_default();
        assert!(json.contains("\"time_wait\":9"), "{json}");
        assert!(json.contains("\"side\":\"remote\""));
        assert!(json.contains(
            "{\"key\":{\"series\":\"port_state\",\"port\":8080,\"side\":\"remote\",\"state\":\"time_wait\"},\"points\":[5.0,9.0]}"
        ));

        let only_ports = store.snapshot(&SnapshotOptions {
            kind: Some(CounterKind::Sockets),
            max_points: 1,
            ..SnapshotOptions::default()
        });
        let h = only_ports.history.unwrap_or_else(|| panic!("no history"));
        assert!(!h.seconds.series.is_empty());
        assert!(h
            .seconds
            .series
            .keys()
            .all(|k| matches!(k, SeriesKey::PortState { .. } | SeriesKey::PortTotal { .. })));
        assert_eq!(h.seconds.times_unix_ms, vec![62_000]);

        // The per-sample ring alone: the same points, no minute copied.
        store.record_sample(sample(
            121_000,
            &entries,
            &[("TcpExt ListenOverflows", 140), ("Tcp RetransSegs", 10)],
        ));
        let seconds_only = store.snapshot(&SnapshotOptions {
            minutes: false,
            ..SnapshotOptions::default()
        });
        let full = store.snapshot(&SnapshotOptions::default());
        let (a, b) = (seconds_only.history.unwrap(), full.history.unwrap());
        assert_eq!(a.seconds, b.seconds);
        assert!(!b.minutes.times_unix_ms.is_empty() && !b.minutes.series.is_empty());
        assert!(a.minutes.times_unix_ms.is_empty() && a.minutes.series.is_empty());
    }

    #[test]
    fn a_port_group_that_left_the_top_ports_is_named_while_its_history_is_kept() {
        let config = CountersConfig {
            top_ports: 1,
            ..CountersConfig::default()
        };
        let store = CounterStore::new(&config);
        // A TIME_WAIT storm towards 8080, then it ends and 5432 becomes the top port.
        let storm: Vec<SocketEntry> = (0..50)
            .map(|i| entry(SocketState::TimeWait, 40000 + i, 8080))
            .collect();
        store.record_sample(sample(60_000, &storm, &[]));
        let after: Vec<SocketEntry> = (0..3)
            .map(|i| entry(SocketState::Established, 41000 + i, 5432))
            .collect();
        store.record_sample(sample(61_000, &after, &[]));
        let snap = store.snapshot(&SnapshotOptions::default());
        assert_eq!(
            snap.departed_ports,
            [DepartedPorts {
                port: 8080,
                side: PortSide::Remote,
                peak: 50.0,
                states: vec![SocketState::TimeWait],
            }]
        );
        // Current values only: no history, nothing departed to name.
        let current = store.snapshot(&SnapshotOptions::current_only());
        assert!(current.departed_ports.is_empty());
    }

    #[test]
    fn listening_ports_are_named_by_the_configured_target_else_by_the_process() {
        use crate::counters::config::ProcessTarget;
        use crate::counters::owners::PortOwner;
        use crate::counters::process::ProcessCounters;
        let config = CountersConfig {
            processes: vec![ProcessTarget {
                name: "orders".into(),
                pid_file: None,
                process_name: None,
                listen_port: Some(8080),
            }],
            ..CountersConfig::default()
        };
        let store = CounterStore::new(&config);
        // Before any census: the configured port is known, its process not yet.
        assert_eq!(
            store.listening_processes(),
            vec![ListeningProcess {
                port: 8080,
                name: "orders".into(),
                pid: None,
                configured: true,
            }]
        );
        let owner = |port, pid, process: &str| PortOwner {
            port,
            pid,
            process: process.into(),
        };
        store.record_port_owners(vec![
            owner(7000, 20, "nginx"),
            owner(8080, 10, "labsvc"),
            owner(9090, 10, "labsvc"),
        ]);
        let mut with_target = sample(1_000, &[], &[]);
        with_target.processes = vec![(
            "orders".into(),
            Ok(ProcessCounters {
                pids: vec![10],
                open_fds: 12,
                fd_limit: Some(1024),
                threads: 4,
                rss_bytes: 1 << 20,
            }),
        )];
        store.record_sample(with_target);
        let named: Vec<(u16, String, Option<u32>, bool)> = store
            .listening_processes()
            .into_iter()
            .map(|p| (p.port, p.name, p.pid, p.configured))
            .collect();
        assert_eq!(
            named,
            vec![
                (7000, "nginx".into(), Some(20), false),
                (8080, "orders".into(), Some(10), true),
                // Another port of the configured process (an admin listener): its name, but
                // not a service port the user named.
                (9090, "orders".into(), Some(10), false),
            ]
        );
    }

    #[test]
    fn a_quiet_service_listener_keeps_its_queue_history_beyond_the_fullest_n() {
        use crate::counters::config::ProcessTarget;
        let config = CountersConfig {
            top_ports: 1,
            processes: vec![ProcessTarget {
                name: "orders".into(),
                pid_file: None,
                process_name: None,
                listen_port: Some(8080),
            }],
            ..CountersConfig::default()
        };
        let store = CounterStore::new(&config);
        let listener = |port: u16, queue: u32| {
            let mut e = entry(SocketState::Listen, port, 0);
            e.recv_queue = queue;
            e.send_queue = Some(128);
            e
        };
        // 9000 fills its queue (the fullest); 8080 (configured) and 7000 (nobody's) are idle.
        // 9000 also has the most connections: the top port group.
        let busy: Vec<SocketEntry> = (0..3)
            .map(|i| entry(SocketState::Established, 9000, 50000 + i))
            .collect();
        for t in 0..3 {
            let mut entries = vec![listener(9000, 100), listener(8080, 0), listener(7000, 0)];
            entries.extend(busy.iter().cloned());
            store.record_sample(sample(60_000 + t * 1_000, &entries, &[]));
        }
        let snap = store.snapshot(&SnapshotOptions::default());
        let sockets = snap.sockets.as_ref().expect("sockets");
        let ports: Vec<u16> = sockets.listeners.iter().map(|l| l.local.port()).collect();
        assert_eq!(ports, [9000, 8080]);
        assert_eq!(sockets.listeners_omitted, 1);
        let history = snap.history.as_ref().expect("history");
        assert_eq!(
            history.seconds.series[&SeriesKey::ListenQueue { port: 8080 }],
            vec![Some(0.0); 3]
        );
        assert!(!history
            .seconds
            .series
            .contains_key(&SeriesKey::ListenQueue { port: 7000 }));
        // Once 9000 is quiet again and 7000 fills, 9000 keeps its history: no holes.
        let entries = [listener(9000, 0), listener(8080, 0), listener(7000, 50)];
        store.record_sample(sample(63_000, &entries, &[]));
        let snap = store.snapshot(&SnapshotOptions::default());
        let history = snap.history.as_ref().expect("history");
        assert_eq!(
            history.seconds.series[&SeriesKey::ListenQueue { port: 9000 }],
            vec![Some(100.0), Some(100.0), Some(100.0), Some(0.0)]
        );
    }

    /// A service port known only from spans (not configured, never busy, never among the
    /// fullest N) has its listen queue recorded from the sample the agent learns of it, like
    /// a configured port's; before, only the fullest-N census held it.
    #[test]
    fn a_span_only_service_port_has_its_listen_queue_watched() {
        let store = CounterStore::new(&CountersConfig {
            top_ports: 1,
            ..CountersConfig::default()
        });
        let listener = |port: u16, queue: u32| {
            let mut e = entry(SocketState::Listen, port, 0);
            e.recv_queue = queue;
            e.send_queue = Some(128);
            e
        };
        // 9000 is the fullest listener and the busiest port group: the top N of each.
        let mut entries = vec![listener(9000, 100), listener(7000, 0)];
        entries.extend((0..3).map(|i| entry(SocketState::Established, 9000, 50000 + i)));
        store.record_sample(sample(60_000, &entries, &[]));
        store.watch_service_ports([7000]);
        store.record_sample(sample(61_000, &entries, &[]));
        store.record_sample(sample(62_000, &entries, &[]));
        let snap = store.snapshot(&SnapshotOptions::default());
        let history = snap.history.as_ref().expect("history");
        assert_eq!(
            history.seconds.series[&SeriesKey::ListenQueue { port: 7000 }],
            vec![None, Some(0.0), Some(0.0)]
        );
        let sockets = snap.sockets.as_ref().expect("sockets");
        assert_eq!(sockets.listeners_omitted, 0);
    }

    /// A quiet service port on a node where other programs' ports are busier is recorded
    /// from the first sample the agent knows it, on both sides, whatever the top N: its
    /// TIME-WAIT storm then has a baseline. Before, it was summed into "other" until the storm
    /// itself made it one of the busiest.
    #[test]
    fn a_quiet_service_ports_groups_are_recorded_beyond_the_busiest_ports() {
        let store = CounterStore::new(&CountersConfig {
            top_ports: 2,
            ..CountersConfig::default()
        });
        // Three other programs' ports with 5 TIME-WAIT sockets each; the service at 7000 has
        // one connection (its server end and its caller's end).
        let mut entries: Vec<SocketEntry> = (0..15)
            .map(|i| entry(SocketState::TimeWait, 40000 + i, 9000 + i / 5))
            .collect();
        entries.push(entry(SocketState::Listen, 7000, 0));
        entries.push(entry(SocketState::Established, 7000, 45000));
        entries.push(entry(SocketState::Established, 45000, 7000));
        store.record_sample(sample(60_000, &entries, &[]));
        store.watch_service_ports([7000]);
        store.record_sample(sample(61_000, &entries, &[]));
        let snap = store.snapshot(&SnapshotOptions::default());
        let history = snap.history.as_ref().expect("history");
        for side in [PortSide::Local, PortSide::Remote] {
            let key = SeriesKey::PortState {
                port: 7000,
                side,
                state: SocketState::Established,
            };
            assert_eq!(
                history.seconds.series.get(&key),
                Some(&vec![None, Some(1.0)]),
                "{side:?}"
            );
        }
        let sockets = snap.sockets.as_ref().expect("sockets");
        assert_eq!(sockets.ports.len(), 4, "{:?}", sockets.ports);
        assert_eq!(sockets.other.port_groups, 1);
    }

    fn counted(pids: Vec<u32>, open_fds: u64) -> ProcessCounters {
        ProcessCounters {
            pids,
            open_fds,
            fd_limit: Some(1024),
            threads: 4,
            rss_bytes: 1 << 20,
        }
    }

    /// One second of a node where `orders` (pid `pid`) serves 8080 and `leaked` of its
    /// connections wait in CLOSE-WAIT.
    fn leaking(time: i64, leaked: u16, pid: u32) -> NodeSample {
        let mut entries = vec![entry(SocketState::Listen, 8080, 0)];
        entries.extend((0..leaked).map(|i| entry(SocketState::CloseWait, 8080, 50000 + i)));
        let mut s = sample(time, &entries, &[]);
        s.agent_process = Some(counted(vec![7], 30));
        s.processes = vec![(
            "orders".into(),
            Ok(counted(vec![pid], 40 + u64::from(leaked))),
        )];
        s
    }

    fn orders_owns(port: u16, pid: u32) -> PortOwner {
        PortOwner {
            port,
            pid,
            process: "orders".into(),
        }
    }

    const CLOSE_WAIT_8080: SeriesKey = SeriesKey::PortState {
        port: 8080,
        side: PortSide::Local,
        state: SocketState::CloseWait,
    };

    /// A history saved by one agent comes back at the next start: the same points at the
    /// same times, the downtime a gap (never a zero), the minute in progress closed with the
    /// samples before and after the restart, and nothing of the agent's own process.
    #[test]
    fn a_saved_history_comes_back_at_the_next_start_with_the_downtime_as_a_gap() {
        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        // 60 s .. 79 s: 3 CLOSE-WAIT for ten seconds, then 5 more every second.
        let leaked = |t: u16| if t < 10 { 3 } else { 3 + (t - 9) * 5 };
        for t in 0..20 {
            store.record_port_owners(vec![orders_owns(8080, 10)]);
            store.record_sample(leaking(60_000 + i64::from(t) * 1000, leaked(t), 10));
        }
        let before = store.snapshot(&SnapshotOptions::default());
        let saved = store.save(14_000);
        let bytes = serde_json::to_vec(&saved).unwrap();
        let saved: SavedCounters = serde_json::from_slice(&bytes).unwrap();

        // The agent was down from 79 s to 85 s.
        let next = CounterStore::new(&config);
        let restored = next.restore(saved, 85_000).unwrap();
        assert_eq!(restored.sample_points, 15, "{restored:?}");
        assert_eq!(restored.minute_points, 0);
        next.record_port_owners(vec![orders_owns(8080, 10)]);
        next.record_sample(leaking(85_000, 2, 10));
        let after = next.snapshot(&SnapshotOptions::default());
        let (b, a) = (
            before.history.as_ref().unwrap(),
            after.history.as_ref().unwrap(),
        );
        let times: Vec<i64> = (65..80).map(|s| s * 1000).chain([85_000]).collect();
        assert_eq!(a.seconds.times_unix_ms, times);
        let mut expected = b.seconds.series[&CLOSE_WAIT_8080][5..].to_vec();
        expected.push(Some(2.0));
        assert_eq!(a.seconds.series[&CLOSE_WAIT_8080], expected);
        // On a regular axis the downtime is unknown, not zero.
        let axis = a
            .seconds
            .on_regular_axis(&CLOSE_WAIT_8080, 65_000, 1_000, 21);
        assert_eq!(axis[14], Some(53.0));
        assert_eq!(axis[15..20], [None; 5]);
        assert_eq!(axis[20], Some(2.0));
        // The agent's own process is a new one: its series start with it.
        let own = SeriesKey::Process {
            name: AGENT_PROCESS.into(),
            metric: ProcessMetric::OpenFds,
        };
        assert_eq!(
            a.seconds.series[&own],
            [vec![None; 15], vec![Some(30.0)]].concat()
        );
        let fds = SeriesKey::Process {
            name: "orders".into(),
            metric: ProcessMetric::OpenFds,
        };
        assert_eq!(a.seconds.series[&fds][0], Some(43.0));
        // The minute of the restart closes with its peak from before it.
        next.record_sample(leaking(121_000, 2, 10));
        let minutes = next
            .snapshot(&SnapshotOptions::default())
            .history
            .unwrap()
            .minutes;
        assert_eq!(minutes.times_unix_ms, [60_000]);
        assert_eq!(minutes.series[&CLOSE_WAIT_8080], [Some(53.0)]);
    }

    /// A port another process holds after the restart, and a process target that runs as
    /// another process, forget their restored past: it was another process's. The rest keep
    /// theirs.
    #[test]
    fn a_port_or_target_held_by_another_process_after_the_restart_starts_afresh() {
        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        let owners = |pid_9090| vec![orders_owns(8080, 10), orders_owns(9090, pid_9090)];
        let node = |t: i64, pid: u32| {
            let mut s = leaking(t, 3, pid);
            if let Ok(census) = &mut s.sockets.census {
                let more = [
                    entry(SocketState::Listen, 9090, 0),
                    entry(SocketState::Established, 9090, 51000),
                ];
                *census = SocketCensus::from_entries(
                    SocketSource::Netlink,
                    &[vec![entry(SocketState::Listen, 8080, 0)], more.to_vec()].concat(),
                    &DEFAULT_EPHEMERAL_PORTS,
                );
            }
            s
        };
        for t in 0..5 {
            store.record_port_owners(owners(20));
            store.record_sample(node(1_000 + t * 1000, 10));
        }
        let saved = store.save(60_000);
        assert_eq!(saved.owners.len(), 2);
        assert_eq!(
            saved.targets.len(),
            1,
            "the agent's own process is not a target"
        );

        let next = CounterStore::new(&config);
        next.restore(saved, 7_000).unwrap();
        // 9090 went to another process; orders restarted as pid 11 (a target's pid set).
        next.record_port_owners(owners(21));
        next.record_sample(node(7_000, 11));
        let h = next.snapshot(&SnapshotOptions::default()).history.unwrap();
        let known = |key: &SeriesKey| {
            h.seconds
                .series
                .get(key)
                .map_or(0, |p| p.iter().flatten().count())
        };
        let established = |port| SeriesKey::PortState {
            port,
            side: PortSide::Local,
            state: SocketState::Established,
        };
        assert_eq!(known(&established(9090)), 1, "only the new point");
        assert_eq!(known(&SeriesKey::ListenQueue { port: 9090 }), 1);
        assert_eq!(known(&SeriesKey::ListenQueue { port: 8080 }), 6);
        let fds = SeriesKey::Process {
            name: "orders".into(),
            metric: ProcessMetric::OpenFds,
        };
        assert_eq!(known(&fds), 1);
        assert_eq!(
            known(&SeriesKey::NodeState {
                state: SocketState::Listen
            }),
            6
        );
    }

    /// A history restored in the background, after the store sampled already (the agent
    /// serves and samples while it reads its files): the samples taken meanwhile follow the
    /// restored ones on the same axes, and a port another process holds now forgets only its
    /// restored past, not the points taken since.
    #[test]
    fn a_history_restored_after_the_first_samples_is_followed_by_them() {
        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        for t in 0..10 {
            store.record_port_owners(vec![orders_owns(8080, 10)]);
            store.record_sample(leaking(60_000 + t * 1000, 3, 10));
        }
        let next = CounterStore::new(&config);
        let prepared = next.prepare_restore(store.save(60_000), 75_000).unwrap();
        // Two samples while the files are read; 8080 is another process's now.
        for (t, leaked) in [(76_000, 4), (77_000, 5)] {
            next.record_port_owners(vec![orders_owns(8080, 11)]);
            next.record_sample(leaking(t, leaked, 10));
        }
        let restored = next.adopt(prepared).unwrap();
        assert_eq!(restored.sample_points, 10);
        let h = next.snapshot(&SnapshotOptions::default()).history.unwrap();
        let times: Vec<i64> = (60..70).map(|s| s * 1000).chain([76_000, 77_000]).collect();
        assert_eq!(h.seconds.times_unix_ms, times);
        let listen = SeriesKey::NodeState {
            state: SocketState::Listen,
        };
        assert_eq!(h.seconds.series[&listen], [Some(1.0); 12]);
        assert_eq!(
            h.seconds.series[&CLOSE_WAIT_8080],
            [vec![None; 10], vec![Some(4.0), Some(5.0)]].concat()
        );
        // The next census does not forget the new owner's points.
        next.record_port_owners(vec![orders_owns(8080, 11)]);
        next.record_sample(leaking(78_000, 6, 10));
        let h = next.snapshot(&SnapshotOptions::default()).history.unwrap();
        assert_eq!(
            h.seconds.series[&CLOSE_WAIT_8080][10..],
            [Some(4.0), Some(5.0), Some(6.0)]
        );
    }

    /// A save made before the first live sample (only restored points: a save as soon as the
    /// restore is in place, the bench's) keeps the last `seconds_ms` before the newest
    /// restored point, as a save after a sample keeps those before the sample: not the
    /// whole restored ring.
    #[test]
    fn a_save_before_any_live_sample_keeps_the_window_before_the_newest_restored_point() {
        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        for t in 0..60 {
            store.record_sample(leaking(100_000 + t * 1000, 3, 10));
        }
        let next = CounterStore::new(&config);
        next.restore(store.save(i64::MAX), 160_000).unwrap();
        let copy = next.copy_for_save(10_000, None);
        assert_eq!(copy.time_unix_ms, Some(159_000));
        let times: Vec<i64> = (149..160).map(|s| s * 1000).collect();
        assert_eq!(copy.history.second_times, times);
        assert_eq!(next.save(10_000).history.second_times, times);
    }

    /// Points after "now" (a clock set back since they were saved) would shut out every new
    /// sample: they are left out. A store whose samples do not follow the restored ones
    /// refuses the restore.
    #[test]
    fn points_from_the_future_are_left_out_and_a_sampling_store_refuses_a_restore() {
        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        for t in 0..10 {
            store.record_sample(leaking(100_000 + t * 1000, 3, 10));
        }
        let saved = store.save(60_000);
        let next = CounterStore::new(&config);
        let restored = next.restore(saved.clone(), 104_500).unwrap();
        assert_eq!(restored.sample_points, 5);
        next.record_sample(leaking(105_000, 3, 10));
        let h = next.snapshot(&SnapshotOptions::default()).history.unwrap();
        assert_eq!(h.seconds.times_unix_ms.last(), Some(&105_000));
        assert!(next.restore(saved, 200_000).is_err());
        // Older than the per-sample window (900 samples at 1 s): only the minutes would be
        // kept, and this history has no closed minute.
        let far = CounterStore::new(&config);
        let restored = far
            .restore(store.save(60_000), 100_000 + 901_000 + 10_000)
            .unwrap();
        assert_eq!((restored.series, restored.sample_points), (0, 0));
    }

    /// The agent's own listeners are named as its own, not by their command name (another
    /// program's to the diagnosis).
    #[test]
    fn the_agents_own_listeners_are_named_as_its_own() {
        use crate::counters::owners::PortOwner;
        let store = CounterStore::new(&CountersConfig::default());
        let owner = |port, pid, process: &str| PortOwner {
            port,
            pid,
            process: process.into(),
        };
        store.record_port_owners(vec![
            owner(7070, 42, "faultline"),
            owner(5432, 7, "postgres"),
        ]);
        store.set_agent_ports([7070]);
        let names: Vec<(u16, String)> = store
            .listening_processes()
            .into_iter()
            .map(|p| (p.port, p.name))
            .collect();
        assert_eq!(
            names,
            [
                (5432, "postgres".to_owned()),
                (7070, AGENT_LISTENER.to_owned())
            ]
        );
        assert_eq!(store.agent_ports(), [7070]);
    }
}
