//! The sampler: a tokio task that reads every counter source once per interval and writes the
//! results into the [`CounterStore`], and a thread of its own that takes the socket census.
//!
//! Execution model. Each tick reads the cheap node sources (sockstat, the protocol counters,
//! the process targets) on the blocking pool and records the node sample as soon as they are
//! done. The socket census, whose cost grows with the node's sockets (a debug agent beside
//! 32,000 sockets: 40 ms of CPU, several hundred ms of wall time on a loaded node), runs on
//! its own thread (the private `CensusWorker`): each tick asks it for a census for its
//! sample, waits at most a quarter of the interval for it, and records the newest finished
//! census — its own when it came in time, else the one before, marked as repeating the
//! sample it was counted for (`CensusReading::repeats_unix_ms`, which the store turns into the
//! census age of each sample). So a slow census delays no sample: the samples keep one point
//! per interval and each says how old its socket counts are. The agent's first census is
//! taken before the first tick and waited for (there is none to repeat), at most
//! [`FIRST_CENSUS_INTERVALS`] intervals: a census that takes longer holds up no sample, and
//! the samples until it finishes say the census has not finished yet. The
//! owners of the listening ports are resolved on the census thread too (a scan of the
//! process table can take tens of milliseconds).
//!
//! Every HTTP task target is scraped by its own loop on the same interval, bounded by the
//! target's timeout, and its outcome recorded when it arrives; a sample's history point
//! carries each target's latest outcome, as it does for counts pushed over OTLP. So a wedged
//! target, even one whose timeout exceeds the interval, costs the node history nothing and
//! the other targets nothing. A tick that overruns the interval delays the next one instead
//! of piling up (missed ticks are skipped). No source failure ends a loop; only the
//! cancellation token does. The socket census is kept within `socket_cpu_budget_percent` of a
//! core (the private `CensusBudget`), and is taken again only when the kernel's socket
//! counters moved since the last one, or [`QUIET_CENSUS_MAX_AGE`] after it (the private
//! `QuietCensus`).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faultline_series::SocketState;
use parking_lot::{Condvar, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::closes::ConnectionFinder;
use super::config::{CountersConfig, CountersConfigError, ProcessTarget, TaskKind, TaskTarget};
use super::error::CounterError;
use super::outgoing::{LookOutcome, OutgoingConnections, OutgoingTracker};
use super::owners::{PortOwner, PortOwners};
use super::proc_net::{read_protocol_counters, read_sockstat};
use super::process::{read_process, ProcessWatcher};
use super::reader::{CensusReading, SocketReader};
use super::runtime::RuntimeCounters;
use super::sockets::SocketEntry;
use super::store::{CounterStore, NodeSample};
use super::tasks::scrape;

/// The blocking half of the sampler, in one piece: everything read from the kernel, the
/// census taken in line when it is due. The running sampler splits it (the census on its own
/// thread); this is for a caller that samples on its own schedule (tests, benchmarks).
#[derive(Debug)]
pub struct NodeSampler {
    sockets: SocketCounter,
    readings: TickReader,
}

/// What each tick reads itself: the kernel's socket counters and the process targets.
#[derive(Debug)]
struct TickReader {
    proc_root: PathBuf,
    watcher: ProcessWatcher,
    processes: Vec<ProcessTarget>,
    /// The process ids of each target at the last sample: the census reads their
    /// connections (see [`super::outgoing`]).
    pids: Vec<(String, Vec<u32>)>,
}

/// The longest a census is repeated while the kernel's socket counters stand still. Sockets
/// can change state without moving any of [`SOCKET_ACTIVITY`]: a connection whose remote peer
/// hangs up goes from ESTABLISHED to CLOSE_WAIT, an accept queue drains, and no counter says
/// so; such a change is counted within this long (a CLOSE_WAIT leak grows over minutes, and
/// #11's counter-only incidents are raised within 10 s of their start).
pub const QUIET_CENSUS_MAX_AGE: Duration = Duration::from_secs(5);

/// The kernel counters that move whenever a TCP socket of the agent's network namespace is
/// opened, accepted, refused, reset, closed or enters or leaves TIME_WAIT (`/proc/net/
/// sockstat{,6}`, `snmp`, `netstat`, already read every sample; all kept per namespace). While
/// none of them moves, a new census would count what the last one counted (up to the changes
/// [`QUIET_CENSUS_MAX_AGE`] is for): on a node whose connections are kept alive, that is most
/// seconds. The full netlink dump walks the kernel's whole established hash (all network
/// namespaces' sockets, 262,144 buckets here): 1.5–5 ms of kernel time each second, a quarter
/// of the agent's 1 % budget.
///
/// Left out: sockstat's `TCP alloc` and `TCP orphan`, the only node-wide ones. They move with
/// every namespace's sockets (a node with containers churning connections: most seconds), and
/// each change they show of a socket the census counts moves one of these too: a socket is
/// counted once it connects (`ActiveOpens`, `inuse`), listens (`inuse`) or is accepted
/// (`PassiveOpens`); a socket closed by its process (an orphan) first leaves ESTABLISHED or
/// CLOSE_WAIT (`CurrEstab` counts both), and then goes to TIME_WAIT (`TCP tw`, `TcpExt TW`)
/// or is freed (`inuse`).
const SOCKET_ACTIVITY: [&str; 12] = [
    "TCP inuse",
    "TCP tw",
    "TCP6 inuse",
    "Tcp ActiveOpens",
    "Tcp PassiveOpens",
    "Tcp AttemptFails",
    "Tcp EstabResets",
    "Tcp CurrEstab",
    "Tcp OutRsts",
    "TcpExt ListenOverflows",
    "TcpExt ListenDrops",
    "TcpExt TW",
];

/// [`SOCKET_ACTIVITY`]'s values at one sample (a counter the kernel does not have is -1).
type SocketActivity = [i64; SOCKET_ACTIVITY.len()];

/// The activity counters of a sample, or `None` when either file could not be read (every
/// sample then takes a census).
fn socket_activity(
    sockstat: &Result<BTreeMap<String, i64>, CounterError>,
    protocol: &Result<BTreeMap<String, i64>, CounterError>,
) -> Option<SocketActivity> {
    let (Ok(sockstat), Ok(protocol)) = (sockstat, protocol) else {
        return None;
    };
    if sockstat.is_empty() || protocol.is_empty() {
        return None;
    }
    Some(std::array::from_fn(|i| {
        let key = SOCKET_ACTIVITY[i];
        sockstat
            .get(key)
            .or_else(|| protocol.get(key))
            .copied()
            .unwrap_or(-1)
    }))
}

/// Says when the last census may be repeated: while the socket counters have not moved since
/// it was taken (see [`SOCKET_ACTIVITY`]), for at most [`QUIET_CENSUS_MAX_AGE`].
#[derive(Debug, Default)]
struct QuietCensus {
    /// When the last good census was taken, and the counters read just before it.
    last: Option<(Instant, SocketActivity)>,
}

impl QuietCensus {
    /// Whether a census is due at `now` with the counters `activity`: something counted
    /// moved since the last one, or it is old, or there is none.
    fn due(&self, now: Instant, activity: Option<&SocketActivity>) -> bool {
        let Some((at, counted)) = &self.last else {
            return true;
        };
        activity != Some(counted) || now.saturating_duration_since(*at) >= QUIET_CENSUS_MAX_AGE
    }

    /// Books a census taken at `at` after the counters read `activity` (`counted`: whether it
    /// counted the sockets; a failed one is never repeated).
    fn book(&mut self, at: Instant, activity: Option<SocketActivity>, counted: bool) {
        self.last = match (activity, counted) {
            (Some(activity), true) => Some((at, activity)),
            _ => None,
        };
    }
}

/// Most intervals the agent's first sample waits for its first census. The first points
/// then have socket counts (a census of 30,000 sockets takes well under a second); a census
/// that takes longer (a netlink dump that does not return, a procfs read that blocks) must
/// not keep the node's other counters and the task targets from being sampled.
pub const FIRST_CENSUS_INTERVALS: u32 = 5;

/// The span over which at most [`CONFIRMING_CENSUSES_PER_GAP`] confirming censuses
/// ([`CounterStore::ask_for_census`]) are taken: the most they can add to the census' CPU is
/// that many censuses every this long.
pub const CONFIRMING_CENSUS_GAP: Duration = Duration::from_secs(15);

/// Most confirming censuses within [`CONFIRMING_CENSUS_GAP`]. Two: a storm's rise is
/// confirmed by the census after the one that showed it, and when that census comes a second
/// later the rise may still be short of the storm's floor at a storm's pace
/// (`incident::MIN_RATE_STORM_RISE`): seen on the unseen lab beside 25,000 other TIME-WAIT
/// sockets, in 2 of 7 runs the confirming census read a rise of 45–48 at 16–19 closes a
/// second, and with one census per gap the incident waited for the next regular census, 2–5 s
/// later. One more census a second later tells it.
pub const CONFIRMING_CENSUSES_PER_GAP: usize = 2;

/// Keeps the socket census within `socket_cpu_budget_percent` of a core: after a census that
/// cost `c` of CPU, the next one waits until `c / budget` has passed since this one began.
/// Between censuses every sample repeats the last one, so the history keeps one point per
/// sample, and the source's status says how often the sockets are really counted.
#[derive(Debug)]
struct CensusBudget {
    /// Share of one core (0: no limit).
    share: f64,
    interval: Duration,
    /// While the budget stretches the census interval: when the next census is due.
    next_at: Option<Instant>,
}

impl CensusBudget {
    /// Whether the budget allows a census at `now`.
    fn due(&self, now: Instant) -> bool {
        self.next_at.is_none_or(|at| now >= at)
    }

    /// Books a census that began at `began` and cost `cpu`, and notes in `reading` when the
    /// budget stretches the census interval.
    fn book(&mut self, began: Instant, cpu: Duration, reading: &mut CensusReading) {
        self.next_at = None;
        if self.share <= 0.0 || reading.census.is_err() {
            return;
        }
        let period = cpu.div_f64(self.share);
        // Half an interval of slack: a census due a little after a tick runs at that tick.
        if period <= self.interval + self.interval / 2 {
            return;
        }
        reading.budget_note = Some(format!(
            "counted every {:.1} s, not every sample: a census costs {:.0} ms of CPU and \
             socket_cpu_budget_percent is {}",
            period.as_secs_f64(),
            cpu.as_secs_f64() * 1e3,
            self.share * 100.0
        ));
        self.next_at = Some(began + period - self.interval / 2);
    }
}

/// CPU time of the calling thread (user + system: the netlink dump runs in the kernel).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// One census as the samples that record it share it: taken for the sample of
/// `counted_unix_ms`, repeated by the later ones until the next.
#[derive(Debug)]
struct Counted {
    /// The census as read (`repeats_unix_ms` is `None`: counted for its own sample).
    reading: CensusReading,
    /// The sample time it was taken for (Unix ms).
    counted_unix_ms: i64,
    /// Its listening sockets: process targets found by their port, and the ports' owners,
    /// are looked up among them.
    listening: Vec<SocketEntry>,
}

impl Counted {
    /// The reading the sample of `time_unix_ms` records: this census, said to repeat the one
    /// of its own sample when it was taken for another.
    fn reading_for(&self, time_unix_ms: i64) -> CensusReading {
        CensusReading {
            census: match &self.reading.census {
                Ok(census) => Ok(census.clone()),
                Err(e) => Err(copy_error(e)),
            },
            netlink_problem: self.reading.netlink_problem.clone(),
            budget_note: self.reading.budget_note.clone(),
            repeats_unix_ms: (self.counted_unix_ms != time_unix_ms).then_some(self.counted_unix_ms),
            outgoing: BTreeMap::new(),
        }
    }
}

/// The same error again, for each sample that repeats a failed census (an I/O error keeps
/// its kind and text).
fn copy_error(e: &CounterError) -> CounterError {
    let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
    match e {
        CounterError::Netlink(source) => CounterError::Netlink(io(source)),
        CounterError::NetlinkMalformed(why) => CounterError::NetlinkMalformed(why.clone()),
        CounterError::Read { path, source } => CounterError::Read {
            path: path.clone(),
            source: io(source),
        },
        CounterError::Format { path, why } => CounterError::Format {
            path: path.clone(),
            why: why.clone(),
        },
        CounterError::NoProcess(what) => CounterError::NoProcess(what.clone()),
        CounterError::Scrape(why) => CounterError::Scrape(why.clone()),
        CounterError::Worker(why) => CounterError::Worker(why.clone()),
    }
}

/// The socket census with its gates (CPU budget, quiet counters), the owners of the
/// listening ports, and the newest census.
#[derive(Debug)]
struct SocketCounter {
    proc_root: PathBuf,
    reader: SocketReader,
    budget: CensusBudget,
    quiet: QuietCensus,
    owners: PortOwners,
    outgoing: OutgoingTracker,
    /// The process targets' ids as the latest census was asked with them (for the looks).
    targets: Vec<(String, Vec<u32>)>,
    looks: Looks,
    /// While the looks run: the kernel's closed connections and direct look-ups of open ones
    /// (see [`super::closes`]); `Err` when the kernel refused it for this span of looks.
    finder: Option<Result<ConnectionFinder, ()>>,
    /// The agent's own listening ports at the latest resolution of the ports' owners.
    own_ports: std::collections::BTreeSet<u16>,
    newest: Option<Arc<Counted>>,
    /// When the confirming censuses of the last [`CONFIRMING_CENSUS_GAP`] were taken, oldest
    /// first (at most [`CONFIRMING_CENSUSES_PER_GAP`]).
    confirmed_at: std::collections::VecDeque<Instant>,
}

/// How long the census thread keeps looking at the process targets' descriptors after a
/// census saw a storm start ([`LOOK_TRIGGER_RISE`]): a storm is named within seconds or not
/// at all, and an incident lasts longer than this only when its storm does (which starts
/// the looks again at the next census that sees it rise).
pub const LOOK_SPAN: Duration = Duration::from_secs(30);

/// The rise of one listening port's TIME-WAIT sockets within [`LOOK_TRIGGER_WINDOW`] of
/// censuses that starts the looks: a client opening a connection per call to a keep-alive
/// server leaves one a call, a pool recycling its connections a few a minute.
pub const LOOK_TRIGGER_RISE: usize = 10;

/// How far back a census compares its TIME-WAIT counts for [`LOOK_TRIGGER_RISE`]. Not just
/// the census before: a per-call client whose callee takes 50 ms, slowed by a loaded node,
/// added 7 a second (the opener runs), under the rise between two censuses a second apart.
pub const LOOK_TRIGGER_WINDOW: Duration = Duration::from_secs(5);

/// The shortest gap between two looks. A per-call client on loopback holds each connection
/// a millisecond or two: at 40 calls a second, a look finds one open about 1 time in 25. On
/// the opener runs (debug build, load 17) looks every 50 ms, taken about 10 times a second,
/// caught the first three 9 s after the storm began; this is the floor, the budget sets the
/// pace.
pub const LOOK_GAP: Duration = Duration::from_millis(20);

/// The gap between two looks once a caller of a followed port has been seen opening and
/// closing [`NAMED_SHORT_LIVED`] connections to it within a minute: enough to name it, so
/// the looks only keep that evidence fresh. At 40 calls a second of 1–2 ms each, a look every
/// 250 ms catches one open about one time in twelve (~20 a minute, the probe places nearly
/// all), while looks as fast as the budget allows kept the census thread at twice its share
/// of a core for as long as a storm lasted (`twstorm2-notes`: ~1 % of a core for 10 minutes,
/// debug).
pub const LOOK_GAP_NAMED: Duration = Duration::from_millis(250);

/// Short-lived connections to a followed port, placed, from one caller within a minute, past
/// which the looks slow to [`LOOK_GAP_NAMED`]: three times the diagnosis's least for naming
/// an opener, so that the slower looks keep it above that.
pub const NAMED_SHORT_LIVED: u32 = 10;

/// When the census thread looks at the process targets' descriptors between censuses (see
/// [`super::outgoing`]): while a storm is suspected, every [`LOOK_GAP`] or less often, and
/// the dumps that place new sockets as often as their cost allows, so that the looks' CPU
/// (dumps included) stays within the census's share of a core (`socket_cpu_budget_percent`).
/// So for at most [`LOOK_SPAN`] after a census saw a storm start, the socket work may take
/// up to twice that share; outside a storm the looks cost nothing.
#[derive(Debug, Default)]
struct Looks {
    /// TIME-WAIT sockets per listening port at the censuses of the last
    /// [`LOOK_TRIGGER_WINDOW`], oldest first.
    time_wait: std::collections::VecDeque<(Instant, BTreeMap<u16, usize>)>,
    /// Until when to look.
    until: Option<Instant>,
    /// When the next look is due.
    next_at: Option<Instant>,
    /// When a look may next dump the node's connections to place a new socket.
    dump_at: Option<Instant>,
    /// The listening ports whose TIME-WAIT rise started or extended the looks (cleared when
    /// they pause).
    ports: std::collections::BTreeSet<u16>,
    /// Looks taken, the dumps they asked for, the sockets those placed, and the CPU of the
    /// looks' reads and of the dumps, since the start (logged when the looks pause).
    taken: u64,
    dumps: u64,
    placed: u64,
    /// Looks that looked their new sockets up directly, and the sockets those placed.
    probes: u64,
    probe_placed: u64,
    cpu: Duration,
    dump_cpu: Duration,
}

impl Looks {
    /// After a census at `now` with `entries`: starts (or extends) the looks when a
    /// listening port's TIME-WAIT count rose by [`LOOK_TRIGGER_RISE`] since a census of the
    /// last [`LOOK_TRIGGER_WINDOW`]. The agent's own ports (`own`) never do: a script polling
    /// its API with a connection per request (the opener runs' poller, twice a second) kept the
    /// looks going and the census thread at 0.60 % of a core instead of 0.25 % before any
    /// storm (release).
    fn after_census(
        &mut self,
        now: Instant,
        entries: &[SocketEntry],
        targets: bool,
        own: &std::collections::BTreeSet<u16>,
    ) {
        let listening: std::collections::BTreeSet<u16> = entries
            .iter()
            .filter(|e| e.state == SocketState::Listen && !own.contains(&e.local.port()))
            .map(|e| e.local.port())
            .collect();
        let mut time_wait: BTreeMap<u16, usize> = BTreeMap::new();
        for e in entries.iter().filter(|e| e.state == SocketState::TimeWait) {
            // Who closed first holds the TIME-WAIT: either side names the listener.
            let port = [e.local.port(), e.remote.port()]
                .into_iter()
                .find(|p| listening.contains(p));
            if let Some(port) = port {
                *time_wait.entry(port).or_default() += 1;
            }
        }
        while self
            .time_wait
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > LOOK_TRIGGER_WINDOW)
        {
            self.time_wait.pop_front();
        }
        let rose: std::collections::BTreeSet<u16> = time_wait
            .iter()
            .filter(|(port, n)| {
                self.time_wait.iter().any(|(_, before)| {
                    **n >= before.get(port).copied().unwrap_or(0) + LOOK_TRIGGER_RISE
                })
            })
            .map(|(port, _)| *port)
            .collect();
        self.time_wait.push_back((now, time_wait));
        if !rose.is_empty() && targets {
            self.until = Some(now + LOOK_SPAN);
            self.next_at.get_or_insert(now + LOOK_GAP);
            self.ports.extend(rose);
        }
    }

    /// The port a look's dump is filtered to: the one port whose rise the looks follow (its
    /// callers' connections to it and its listener's side of them are all a look places);
    /// `None` (the whole namespace's connections) while they follow several.
    fn dump_port(&self) -> Option<u16> {
        match self.ports.len() {
            1 => self.ports.first().copied(),
            _ => None,
        }
    }

    /// Whether a look at `now` may dump the node's connections.
    fn may_dump(&self, now: Instant) -> bool {
        self.dump_at.is_none_or(|at| now >= at)
    }

    /// Books a look at `now` whose reads of descriptors cost `cpu` and its dump (if it took
    /// one) `dump`, within `share` of a core (0: no limit): half for each.
    fn book(
        &mut self,
        now: Instant,
        cpu: Duration,
        dump: Option<Duration>,
        outcome: &LookOutcome,
        floor: Duration,
        share: f64,
    ) {
        self.taken += 1;
        self.dumps += u64::from(dump.is_some());
        self.placed += outcome.placed as u64;
        self.probes += u64::from(outcome.probed);
        self.probe_placed += outcome.probe_placed as u64;
        self.cpu += cpu;
        self.dump_cpu += dump.unwrap_or_default();
        let spread = |cost: Duration| {
            if share > 0.0 {
                cost.div_f64(share / 2.0)
            } else {
                Duration::ZERO
            }
        };
        if let Some(dump) = dump {
            self.dump_at = Some(now + spread(dump));
        }
        let gap = spread(cpu).max(floor);
        self.next_at = Some(now + gap).filter(|at| self.until.is_some_and(|until| *at < until));
        if self.next_at.is_none() {
            self.until = None;
            self.ports.clear();
            tracing::info!(
                looks = self.taken,
                dumps = self.dumps,
                placed = self.placed,
                probes = self.probes,
                probe_placed = self.probe_placed,
                cpu_ms = self.cpu.as_secs_f64() * 1e3,
                dump_cpu_ms = self.dump_cpu.as_secs_f64() * 1e3,
                "looks at the process targets' sockets paused (totals since the start)"
            );
        }
    }
}

impl SocketCounter {
    fn new(config: &CountersConfig) -> SocketCounter {
        SocketCounter {
            proc_root: config.proc_root.clone(),
            reader: SocketReader::new(config.socket_source, config.proc_root.clone()),
            budget: CensusBudget {
                share: config.socket_cpu_budget_percent / 100.0,
                interval: config.interval(),
                next_at: None,
            },
            quiet: QuietCensus::default(),
            owners: PortOwners::new(),
            outgoing: OutgoingTracker::new(),
            targets: Vec::new(),
            looks: Looks::default(),
            finder: None,
            own_ports: std::collections::BTreeSet::new(),
            newest: None,
            confirmed_at: std::collections::VecDeque::new(),
        }
    }

    /// The census for the sample of `time_unix_ms`, read at `now` after the counters
    /// `activity`: a new one when the gates let it be taken (or the last one failed), else the
    /// newest. A new one reads the connections of the process targets (`targets`: name and
    /// process ids), its cost booked with the census's. `confirm` (the sample time a diagnosis
    /// judged when it asked for a census, see [`CounterStore::ask_for_census`]) takes one
    /// whatever the gates say, unless a census newer than that sample was taken meanwhile, at
    /// most [`CONFIRMING_CENSUSES_PER_GAP`] times per [`CONFIRMING_CENSUS_GAP`], as an overdraft of the budget rather than a
    /// debt: the next census comes when it would have come without it.
    fn count(
        &mut self,
        now: Instant,
        time_unix_ms: i64,
        activity: Option<SocketActivity>,
        confirm: Option<i64>,
        targets: &[(String, Vec<u32>)],
    ) -> Arc<Counted> {
        while self
            .confirmed_at
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= CONFIRMING_CENSUS_GAP)
        {
            self.confirmed_at.pop_front();
        }
        let confirm = confirm.is_some_and(|judged| {
            self.newest
                .as_ref()
                .is_none_or(|n| n.counted_unix_ms <= judged)
        }) && self.confirmed_at.len() < CONFIRMING_CENSUSES_PER_GAP;
        let mut overdraft = false;
        if let Some(newest) = &self.newest {
            let repeat = newest.reading.census.is_ok()
                && (!self.budget.due(now) || !self.quiet.due(now, activity.as_ref()));
            if repeat && !confirm {
                return Arc::clone(newest);
            }
            overdraft = repeat;
        }
        let cpu = thread_cpu();
        let mut reading = self.reader.census();
        if reading.census.is_ok() {
            if !targets.is_empty() {
                self.targets = targets.to_vec();
            }
            self.outgoing.observe(
                &self.proc_root,
                self.reader.entries(),
                &self.targets,
                now,
                unix_ms(),
            );
            self.looks.after_census(
                now,
                self.reader.entries(),
                !self.targets.is_empty(),
                &self.own_ports,
            );
        }
        let cost = thread_cpu().saturating_sub(cpu);
        let scheduled = self.budget.next_at;
        self.budget.book(now, cost, &mut reading);
        if overdraft {
            // (A debt, the next census put off by this one's cost, made the storm's first
            // census come later on the unseen lab than without any early census.)
            self.budget.next_at = scheduled;
            self.confirmed_at.push_back(now);
        }
        self.quiet.book(now, activity, reading.census.is_ok());
        let listening = self
            .reader
            .entries()
            .iter()
            .filter(|e| e.state == SocketState::Listen)
            .copied()
            .collect();
        let counted = Arc::new(Counted {
            reading,
            counted_unix_ms: time_unix_ms,
            listening,
        });
        self.newest = Some(Arc::clone(&counted));
        counted
    }

    /// When the next look at the process targets' descriptors is due (`None`: no storm is
    /// suspected).
    fn next_look(&self) -> Option<Instant> {
        self.looks.next_at
    }

    /// Looks at the process targets' descriptors (see [`Looks`]). Blocking.
    fn look(&mut self, now: Instant) {
        let cpu = thread_cpu();
        let may_dump = self.looks.may_dump(now);
        let port = self.looks.dump_port();
        let reader = &mut self.reader;
        if self.finder.is_none() && reader.uses_netlink() {
            self.finder = Some(ConnectionFinder::open(reader.ephemeral()).map_err(|e| {
                tracing::debug!(error = %e, "closed connections not followed: looks place by dumps only");
            }));
        }
        let followed = &self.looks.ports;
        let finder = self.finder.as_mut().and_then(|f| f.as_mut().ok());
        let mut dump = None;
        let outcome = self.outgoing.look(
            &self.proc_root,
            &self.targets,
            now,
            unix_ms(),
            |out| finder.is_some_and(|f| f.find(followed, out)),
            |out| {
                if !may_dump {
                    return false;
                }
                let before = thread_cpu();
                let placed = reader.connections(port, out);
                dump = Some(thread_cpu().saturating_sub(before));
                placed
            },
        );
        let cost = thread_cpu()
            .saturating_sub(cpu)
            .saturating_sub(dump.unwrap_or_default());
        let floor =
            if self.outgoing.most_short_lived_to(&self.looks.ports, now) >= NAMED_SHORT_LIVED {
                LOOK_GAP_NAMED
            } else {
                LOOK_GAP
            };
        self.looks
            .book(now, cost, dump, &outcome, floor, self.budget.share);
        if self.looks.next_at.is_none() {
            if let Some(Ok(f)) = self.finder.take() {
                tracing::info!(
                    closes_read = f.closes_read,
                    lookups = f.lookups_asked,
                    "closed connections no longer followed (the looks paused)"
                );
            }
            self.finder = None;
        }
    }

    /// The process targets' connections as of their latest read.
    fn connections(&self, now: Instant) -> BTreeMap<String, OutgoingConnections> {
        self.outgoing.connections(now)
    }

    /// The processes holding the listening sockets of the newest census (cached; the process
    /// table is scanned only for listeners not placed yet). Blocking.
    fn port_owners(&mut self) -> Vec<PortOwner> {
        let listening = self.newest.as_ref().map_or(&[][..], |c| &c.listening[..]);
        let owners = self.owners.resolve(&self.proc_root, listening);
        let me = std::process::id();
        self.own_ports = owners
            .iter()
            .filter(|o| o.pid == me)
            .map(|o| o.port)
            .collect();
        owners
    }
}

impl TickReader {
    fn new(config: &CountersConfig) -> TickReader {
        TickReader {
            proc_root: config.proc_root.clone(),
            watcher: ProcessWatcher::new(config.proc_root.clone()),
            processes: config.processes.clone(),
            pids: Vec::new(),
        }
    }

    /// The kernel's socket counters (sockstat, then the protocol counters) and the census
    /// gate's reading of them.
    fn socket_counters(&self) -> SocketCounters {
        let sockstat = read_sockstat(&self.proc_root);
        let protocol = read_protocol_counters(&self.proc_root);
        let activity = socket_activity(&sockstat, &protocol);
        SocketCounters {
            sockstat,
            protocol,
            activity,
        }
    }

    /// The sample of `time_unix_ms`: `counters`, the census `counted` (`None`: no census
    /// has finished yet) and the targets' connections `outgoing`, with the process targets
    /// read now.
    fn sample(
        &mut self,
        time_unix_ms: i64,
        runtime: Option<RuntimeCounters>,
        counters: SocketCounters,
        counted: Option<&Counted>,
        outgoing: BTreeMap<String, OutgoingConnections>,
    ) -> NodeSample {
        let listening = counted.map_or(&[][..], |c| &c.listening[..]);
        let processes: Vec<(String, Result<_, _>)> = self
            .processes
            .iter()
            .map(|t| (t.name.clone(), self.watcher.read(t, listening)))
            .collect();
        self.pids = processes
            .iter()
            .map(|(name, c)| {
                let pids = c.as_ref().map(|c| c.pids.clone()).unwrap_or_default();
                (name.clone(), pids)
            })
            .collect();
        let mut sockets = match counted {
            Some(c) => c.reading_for(time_unix_ms),
            None => CensusReading::of(Err(CounterError::Worker(
                "the socket census has not finished yet".into(),
            ))),
        };
        sockets.outgoing = outgoing;
        NodeSample {
            time_unix_ms,
            sockets,
            sockstat: counters.sockstat,
            protocol: counters.protocol,
            processes,
            // The agent's own pid is only meaningful in its own procfs.
            agent_process: read_process(Path::new("/proc"), std::process::id()).ok(),
            runtime,
            scrapes: Vec::new(),
        }
    }
}

/// The kernel's socket counters of one sample.
struct SocketCounters {
    sockstat: Result<BTreeMap<String, i64>, CounterError>,
    protocol: Result<BTreeMap<String, i64>, CounterError>,
    activity: Option<SocketActivity>,
}

impl NodeSampler {
    /// A node sampler for `config` (socket source, proc root, process targets, CPU budget).
    pub fn new(config: &CountersConfig) -> NodeSampler {
        NodeSampler {
            sockets: SocketCounter::new(config),
            readings: TickReader::new(config),
        }
    }

    /// The processes holding the listening sockets of the last census (cached; the process
    /// table is scanned only for listeners not placed yet). Blocking, like [`Self::sample`].
    pub fn port_owners(&mut self) -> Vec<PortOwner> {
        self.sockets.port_owners()
    }

    /// Reads every node source once, the census in line when it is due. Blocking: call it
    /// from a blocking thread.
    pub fn sample(&mut self, time_unix_ms: i64, runtime: Option<RuntimeCounters>) -> NodeSample {
        self.sample_at(Instant::now(), time_unix_ms, runtime)
    }

    fn sample_at(
        &mut self,
        now: Instant,
        time_unix_ms: i64,
        runtime: Option<RuntimeCounters>,
    ) -> NodeSample {
        // The counters first: a census taken after them counts everything they saw move.
        let counters = self.readings.socket_counters();
        let counted = self.sockets.count(
            now,
            time_unix_ms,
            counters.activity,
            None,
            &self.readings.pids,
        );
        self.readings.sample(
            time_unix_ms,
            runtime,
            counters,
            Some(&counted),
            self.sockets.connections(now),
        )
    }
}

/// What a tick asks the census thread for: a census for its sample, if one is due.
#[derive(Debug)]
struct CensusRequest {
    now: Instant,
    time_unix_ms: i64,
    activity: Option<SocketActivity>,
    /// The sample time a diagnosis judged when it asked for a fresh census
    /// ([`CounterStore::ask_for_census`]).
    confirm: Option<i64>,
    /// The process targets' ids, for their connections.
    targets: Vec<(String, Vec<u32>)>,
}

/// The newest census, the owners of its listening ports, and the process targets'
/// connections as of their latest read (a look between censuses renews them).
type Newest = (
    Arc<Counted>,
    Arc<Vec<PortOwner>>,
    Arc<BTreeMap<String, OutgoingConnections>>,
);

/// The socket census on a thread of its own (see the module docs). Dropping it stops the
/// thread after the census it may be taking.
#[derive(Debug)]
struct CensusWorker {
    shared: Arc<WorkerShared>,
}

#[derive(Debug, Default)]
struct WorkerShared {
    state: Mutex<WorkerState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct WorkerState {
    /// The newest request not taken up yet (an older one left waiting is superseded).
    asked: Option<CensusRequest>,
    /// The newest census finished.
    newest: Option<Newest>,
    /// The sample time of the newest request answered.
    answered_unix_ms: Option<i64>,
    stop: bool,
}

impl CensusWorker {
    /// Starts the census thread for `config`.
    fn start(config: &CountersConfig) -> std::io::Result<CensusWorker> {
        let shared = Arc::new(WorkerShared::default());
        let counter = SocketCounter::new(config);
        let (theirs, config) = (Arc::clone(&shared), config.clone());
        std::thread::Builder::new()
            .name("faultline-census".into())
            .spawn(move || census_loop(counter, &config, &theirs))?;
        Ok(CensusWorker { shared })
    }

    /// Asks for a census for the sample of `request` and returns the newest one once the
    /// request is answered or `wait` has passed, whichever comes first (`None` while no
    /// census has finished).
    fn ask(&self, request: CensusRequest, wait: Duration) -> Option<Newest> {
        let deadline = Instant::now() + wait;
        let time = request.time_unix_ms;
        let mut state = self.shared.state.lock();
        state.asked = Some(request);
        self.shared.changed.notify_all();
        loop {
            let answered = state.answered_unix_ms.is_some_and(|t| t >= time);
            if answered || Instant::now() >= deadline {
                return state.newest.clone();
            }
            self.shared.changed.wait_until(&mut state, deadline);
        }
    }
}

impl Drop for CensusWorker {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

/// The census thread: answers each request (the newest when several came during a census)
/// until stopped, and between requests, while a storm is suspected, looks at the process
/// targets' descriptors (see [`Looks`]). A panic in a source reader loses that census (or
/// look) only: a fresh counter takes over.
fn census_loop(mut counter: SocketCounter, config: &CountersConfig, shared: &WorkerShared) {
    loop {
        let request = {
            let mut state = shared.state.lock();
            loop {
                if state.stop {
                    return;
                }
                if let Some(request) = state.asked.take() {
                    break Some(request);
                }
                match counter.next_look() {
                    Some(at) if Instant::now() >= at => break None,
                    Some(at) => {
                        shared.changed.wait_until(&mut state, at);
                    }
                    None => shared.changed.wait(&mut state),
                }
            }
        };
        let Some(request) = request else {
            let looked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                counter.look(Instant::now());
                counter.connections(Instant::now())
            }));
            let mut state = shared.state.lock();
            match looked {
                Ok(outgoing) => {
                    if let Some(newest) = state.newest.as_mut() {
                        newest.2 = Arc::new(outgoing);
                    }
                }
                Err(_) => {
                    tracing::error!(
                        "a look at the process targets' sockets failed; a fresh reader takes over"
                    );
                    counter = SocketCounter::new(config);
                }
            }
            continue;
        };
        let time = request.time_unix_ms;
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let counted = counter.count(
                request.now,
                time,
                request.activity,
                request.confirm,
                &request.targets,
            );
            let owners = Arc::new(counter.port_owners());
            (
                counted,
                owners,
                Arc::new(counter.connections(Instant::now())),
            )
        }));
        let mut state = shared.state.lock();
        match answer {
            Ok(newest) => state.newest = Some(newest),
            Err(_) => {
                tracing::error!("socket census failed; a fresh reader takes over");
                counter = SocketCounter::new(config);
            }
        }
        state.answered_unix_ms = Some(time);
        shared.changed.notify_all();
    }
}

/// Starts the sampler on the current tokio runtime. It samples immediately, then every
/// `config.interval_ms`, until `cancel` is cancelled. Fails only on an invalid config.
pub fn spawn_sampler(
    config: CountersConfig,
    store: Arc<CounterStore>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, CountersConfigError> {
    config.validate()?;
    Ok(tokio::spawn(run_sampler(config, store, cancel)))
}

async fn run_sampler(config: CountersConfig, store: Arc<CounterStore>, cancel: CancellationToken) {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the HTTP client; task targets will fail");
            None
        }
    };
    let scrapers: Vec<JoinHandle<()>> = config
        .tasks
        .iter()
        .map(|target| {
            tokio::spawn(run_scraper(
                target.clone(),
                client.clone(),
                config.interval(),
                Arc::clone(&store),
                cancel.clone(),
            ))
        })
        .collect();
    let mut node = Some(NodeSampler::new(&config));
    let worker = match CensusWorker::start(&config) {
        Ok(worker) => Some(Arc::new(worker)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the socket census thread; the census runs in the sampler's tick");
            None
        }
    };
    // The agent's first census is taken before its first tick: a first census that takes
    // longer than the interval (a busy node) delays no sample, and one that takes longer
    // than a few intervals (a wedged source) delays the first sample no more than that.
    let first_wait = config.interval() * FIRST_CENSUS_INTERVALS;
    if let Some(worker) = &worker {
        let (worker, proc_root) = (Arc::clone(worker), config.proc_root.clone());
        let first = tokio::task::spawn_blocking(move || {
            let request = CensusRequest {
                now: Instant::now(),
                time_unix_ms: unix_ms(),
                activity: socket_activity(
                    &read_sockstat(&proc_root),
                    &read_protocol_counters(&proc_root),
                ),
                confirm: None,
                targets: Vec::new(),
            };
            worker.ask(request, first_wait);
        });
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = first => {}
        }
    }
    // How long a tick waits for the census it asked for (a cheap census comes in time, and
    // its sample counts the sockets of its own second); a slower one is recorded by the next
    // tick, which says how old it is.
    let census_wait = config.interval() / 4;
    // How long a tick waits for a census a diagnosis asked for ([`CounterStore::ask_for_census`]):
    // most of the interval, so that it is recorded by its own sample even on a loaded node
    // (a busy node's census, 25,000 sockets: tens of ms of CPU, hundreds of ms of wall time
    // at load 20). The wait ends when the census is answered (or refused), and the tick after
    // starts on time.
    let confirm_wait = config.interval() * 3 / 4;
    let mut ticker = tokio::time::interval(config.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = unix_ms();
        let runtime = RuntimeCounters::current();
        let mut sampler = node.take().unwrap_or_else(|| NodeSampler::new(&config));
        let worker = worker.clone();
        let confirm = store.census_asked();
        let blocking = tokio::task::spawn_blocking(move || {
            let counters = sampler.readings.socket_counters();
            let newest = match &worker {
                Some(worker) => {
                    let request = CensusRequest {
                        now: Instant::now(),
                        time_unix_ms: now,
                        activity: counters.activity,
                        confirm,
                        targets: sampler.readings.pids.clone(),
                    };
                    // A census asked for is waited for longer: a diagnosis waits for it, and
                    // a census that misses its sample's wait is recorded a sample later.
                    let wait = match confirm {
                        Some(_) => confirm_wait,
                        None => census_wait,
                    };
                    worker.ask(request, wait)
                }
                None => {
                    let counted = sampler.sockets.count(
                        Instant::now(),
                        now,
                        counters.activity,
                        confirm,
                        &sampler.readings.pids,
                    );
                    let owners = Arc::new(sampler.sockets.port_owners());
                    let outgoing = Arc::new(sampler.sockets.connections(Instant::now()));
                    Some((counted, owners, outgoing))
                }
            };
            let (counted, owners, outgoing) = match newest {
                Some((c, o, g)) => (Some(c), Some(o), g.as_ref().clone()),
                None => (None, None, BTreeMap::new()),
            };
            let sample =
                sampler
                    .readings
                    .sample(now, runtime, counters, counted.as_deref(), outgoing);
            (sampler, sample, owners)
        });
        let sampled = tokio::select! {
            _ = cancel.cancelled() => break,
            sampled = blocking => sampled,
        };
        match sampled {
            Ok((sampler, sample, owners)) => {
                node = Some(sampler);
                // Owners first: after a restore, a port another process holds now forgets
                // its restored past before the new sample continues it.
                if let Some(owners) = owners {
                    store.record_port_owners(owners.as_ref().clone());
                }
                store.record_sample(sample);
            }
            // A panic in a source reader loses this node sample only; a fresh reader takes over.
            Err(e) => tracing::error!(error = %e, "counter sampling failed"),
        }
    }
    for scraper in scrapers {
        let _ = scraper.await;
    }
}

/// Scrapes one task target every `interval` (a scrape that overruns delays the next one) and
/// records each outcome as it arrives.
async fn run_scraper(
    target: TaskTarget,
    client: Option<reqwest::Client>,
    interval: std::time::Duration,
    store: Arc<CounterStore>,
    cancel: CancellationToken,
) {
    let source = scrape_source(target.kind);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let result = match &client {
            Some(c) => tokio::select! {
                _ = cancel.cancelled() => break,
                r = scrape(c, &target) => r.map(|(v, _)| v).map_err(|e| e.to_string()),
            },
            None => Err("no HTTP client".to_string()),
        };
        store.record_scrape(&target.name, source, result, unix_ms());
    }
}

/// The source name a scraped target is shown under.
pub fn scrape_source(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Auto => "http",
        TaskKind::Pprof => "pprof",
        TaskKind::Expvar => "expvar",
        TaskKind::Prometheus => "prometheus",
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::sockets::{SocketCensus, SocketSource, DEFAULT_EPHEMERAL_PORTS};
    use faultline_series::{RuntimeMetric, SeriesKey};

    fn reading() -> CensusReading {
        CensusReading::of(Ok(SocketCensus::from_entries(
            SocketSource::Netlink,
            &[],
            &DEFAULT_EPHEMERAL_PORTS,
        )))
    }

    fn budget(percent: f64) -> CensusBudget {
        CensusBudget {
            share: percent / 100.0,
            interval: Duration::from_secs(1),
            next_at: None,
        }
    }

    /// A census of a node listening on 8080 with `tw` TIME-WAIT sockets towards it and 50
    /// towards 9999, where nobody listens.
    fn time_wait_census(tw: u16) -> Vec<SocketEntry> {
        let entry = |state, local: u16, remote: u16| SocketEntry {
            family: crate::counters::sockets::Family::Ipv4,
            state,
            local: std::net::SocketAddr::from(([127, 0, 0, 1], local)),
            remote: std::net::SocketAddr::from(([127, 0, 0, 1], remote)),
            recv_queue: 0,
            send_queue: Some(0),
            inode: 0,
        };
        let mut e = vec![entry(SocketState::Listen, 8080, 0)];
        e.extend((0..tw).map(|i| entry(SocketState::TimeWait, 40_000 + i, 8080)));
        e.extend((0..50).map(|i| entry(SocketState::TimeWait, 50_000 + i, 9999)));
        e
    }

    #[test]
    fn looks_start_when_a_listeners_time_wait_rises_and_stay_within_the_budget() {
        let t0 = Instant::now();
        let mut looks = Looks::default();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let none = std::collections::BTreeSet::new();
        // The first census has nothing to compare with; a rise of 9 in 5 s is a pool's churn.
        looks.after_census(s(0), &time_wait_census(100), true, &none);
        looks.after_census(s(1), &time_wait_census(104), true, &none);
        looks.after_census(s(5), &time_wait_census(109), true, &none);
        assert_eq!(looks.next_at, None);
        // A rise of 11 within the window, of 6 since the census before.
        looks.after_census(s(6), &time_wait_census(115), true, &none);
        assert_eq!(looks.next_at, Some(s(6) + LOOK_GAP));
        // Its dumps answer the connections of that port only.
        assert_eq!(looks.dump_port(), Some(8080));
        let mut looks = Looks::default();
        looks.after_census(s(0), &time_wait_census(100), true, &none);
        // Without process targets there is nothing to look at.
        looks.after_census(s(1), &time_wait_census(130), false, &none);
        assert_eq!(looks.next_at, None);
        // A rise on the agent's own port (a script polling its API) starts nothing.
        looks.after_census(s(2), &time_wait_census(140), true, &[8080].into());
        assert_eq!(looks.next_at, None);
        let at = s(3);
        looks.after_census(at, &time_wait_census(150), true, &none);
        assert_eq!(looks.next_at, Some(at + LOOK_GAP));
        assert_eq!(looks.until, Some(at + LOOK_SPAN));
        // A cheap look: the next one LOOK_GAP later, and a dump of 1 ms at a 0.5 % budget
        // (half of it for dumps): the next dump 400 ms later. A look whose reads cost 1 ms:
        // the next one 400 ms later.
        let now = at + LOOK_GAP;
        assert!(looks.may_dump(now));
        looks.book(
            now,
            Duration::from_micros(40),
            Some(Duration::from_millis(1)),
            &LookOutcome {
                placed: 1,
                ..LookOutcome::default()
            },
            LOOK_GAP,
            0.005,
        );
        assert_eq!(looks.next_at, Some(now + LOOK_GAP));
        assert!(!looks.may_dump(now + Duration::from_millis(399)));
        assert!(looks.may_dump(now + Duration::from_millis(400)));
        looks.book(
            now,
            Duration::from_millis(1),
            None,
            &LookOutcome::default(),
            LOOK_GAP,
            0.005,
        );
        assert_eq!(looks.next_at, Some(now + Duration::from_millis(400)));
        assert_eq!((looks.taken, looks.dumps, looks.placed), (2, 1, 1));
        // The span over: no more looks until a census sees a rise again.
        looks.book(
            at + LOOK_SPAN,
            Duration::ZERO,
            None,
            &LookOutcome::default(),
            LOOK_GAP,
            0.005,
        );
        assert_eq!((looks.next_at, looks.until), (None, None));
        assert_eq!(looks.dump_port(), None);
    }

    #[test]
    fn an_expensive_census_is_repeated_until_the_budget_allows_the_next() {
        let mut b = budget(1.0);
        let t0 = Instant::now();
        let mut r = reading();
        // 50 ms at 1 %: one census per 5 s.
        b.book(t0, Duration::from_millis(50), &mut r);
        let note = r.budget_note.clone().unwrap_or_default();
        assert!(note.starts_with("counted every 5.0 s"), "{note}");
        assert!(!b.due(t0 + Duration::from_secs(1)), "repeated");
        assert!(b.due(t0 + Duration::from_millis(4_500)), "due again");
    }

    #[test]
    fn a_cheap_census_a_failed_one_or_no_budget_runs_every_sample() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut b = budget(2.0);
        let mut r = reading();
        b.book(t0, Duration::from_millis(8), &mut r);
        assert!(r.budget_note.is_none() && b.due(later));
        let mut failed = CensusReading::of(Err(
            crate::counters::error::CounterError::NetlinkMalformed("x".into()),
        ));
        b.book(t0, Duration::from_millis(500), &mut failed);
        assert!(b.due(later));
        let mut unlimited = budget(0.0);
        let mut r = reading();
        unlimited.book(t0, Duration::from_secs(1), &mut r);
        assert!(r.budget_note.is_none() && unlimited.due(later));
    }

    /// A procfs with `established` sockets in `net/tcp` and the socket counters given.
    fn fake_proc(root: &Path, established: usize, inuse: usize, active_opens: u64) {
        fake_tcp(root, established);
        fake_counters(root, inuse, active_opens, 9);
    }

    /// The text of a `net/tcp` with `established` sockets.
    fn tcp_text(established: usize) -> String {
        let mut tcp = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for i in 0..established {
            tcp.push_str(&format!(
                "{i:4}: 0100007F:{:04X} 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 0\n",
                40_000 + i
            ));
        }
        tcp
    }

    fn fake_tcp(root: &Path, established: usize) {
        let net = root.join("net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("tcp"), tcp_text(established)).unwrap();
    }

    /// The socket counters: `node_wide` is sockstat's `TCP alloc` and `orphan`, which count
    /// every network namespace's sockets.
    fn fake_counters(root: &Path, inuse: usize, active_opens: u64, node_wide: u64) {
        let net = root.join("net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(
            net.join("sockstat"),
            format!(
                "sockets: used 9\nTCP: inuse {inuse} orphan {node_wide} tw 0 alloc {node_wide} mem 1\n"
            ),
        )
        .unwrap();
        std::fs::write(
            net.join("snmp"),
            format!("Tcp: ActiveOpens PassiveOpens CurrEstab\nTcp: {active_opens} 0 {inuse}\n"),
        )
        .unwrap();
    }

    fn established(sample: &NodeSample) -> u32 {
        let census = sample.sockets.census.as_ref().expect("census");
        census
            .by_state
            .get(faultline_series::SocketState::Established)
    }

    /// A sampler reading the fake procfs at `root` (see [`fake_proc`]).
    fn proc_sampler(root: &std::path::Path) -> NodeSampler {
        NodeSampler::new(&CountersConfig {
            socket_source: crate::counters::config::SocketSourceChoice::Proc,
            proc_root: root.to_path_buf(),
            ..CountersConfig::default()
        })
    }

    #[test]
    fn the_census_is_taken_again_when_the_socket_counters_move_or_it_is_old() {
        let root = tempfile::tempdir().unwrap();
        let mut sampler = proc_sampler(root.path());
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        fake_proc(root.path(), 3, 3, 10);
        assert_eq!(established(&sampler.sample_at(t0, 0, None)), 3);
        // Two more sockets in the table, no counter moved: the census of t0 stands.
        fake_proc(root.path(), 5, 3, 10);
        let quiet = sampler.sample_at(t0 + second, 1_000, None);
        assert_eq!(established(&quiet), 3);
        assert!(quiet.sockets.budget_note.is_none());
        assert_eq!(
            quiet.sockets.repeats_unix_ms,
            Some(0),
            "the census of t0 repeated"
        );
        // The connections' opens reach the counters: counted at once.
        fake_proc(root.path(), 5, 5, 12);
        assert_eq!(
            established(&sampler.sample_at(t0 + 2 * second, 2_000, None)),
            5
        );
        // A change no counter shows (peers hanging up, say) is counted once the census is
        // QUIET_CENSUS_MAX_AGE old.
        fake_proc(root.path(), 4, 5, 12);
        let last = t0 + 2 * second + QUIET_CENSUS_MAX_AGE;
        assert_eq!(
            established(&sampler.sample_at(last - second, 6_000, None)),
            5
        );
        assert_eq!(established(&sampler.sample_at(last, 7_000, None)), 4);
        // Counters that cannot be read hold nothing back.
        fake_proc(root.path(), 2, 5, 12);
        std::fs::remove_file(root.path().join("net/snmp")).unwrap();
        assert_eq!(
            established(&sampler.sample_at(last + second, 8_000, None)),
            2
        );
    }

    /// A caller's new connection to a storm's port is placed by a look when no dump may be
    /// taken (the budget spent on the last one): looked up by the ports the kernel hands out
    /// after the latest connection to the port that closed. Without it a socket that lives a
    /// millisecond waited for a dump that reached it in time (1.5–14 s to name a 1 ms caller).
    #[test]
    fn a_look_places_a_new_connection_to_a_storms_port_without_a_dump() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut counter = SocketCounter::new(&CountersConfig::default());
        let me = vec![("self".to_owned(), vec![std::process::id()])];
        let t0 = Instant::now();
        assert!(counter.reader.census().census.is_ok(), "a netlink census");
        counter
            .outgoing
            .observe(&counter.proc_root, counter.reader.entries(), &me, t0, 0);
        counter.targets = me;
        // A storm followed on the port, the dumps' share spent for the whole test.
        counter.looks.ports.insert(port);
        counter.looks.until = Some(t0 + LOOK_SPAN);
        counter.looks.next_at = Some(t0);
        counter.looks.dump_at = Some(t0 + LOOK_SPAN);
        counter.look(t0);
        assert!(
            matches!(counter.finder, Some(Ok(_))),
            "closed connections followed"
        );

        // One call on a connection of its own, then the next one's, open while looks run.
        drop(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        drop(listener.accept().expect("accept"));
        let open = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let held = |counter: &SocketCounter, at: Instant| {
            counter.connections(at)["self"]
                .ports
                .iter()
                .find(|p| p.port == port)
                .map(|p| (p.held, p.local_ports.clone()))
        };
        let mut at = t0;
        let placed = loop {
            at += LOOK_GAP;
            // The kernel reports a close from a work item, a moment after it.
            std::thread::sleep(Duration::from_millis(5));
            counter.look(at);
            if let Some(placed) = held(&counter, at) {
                break placed;
            }
            assert!(at < t0 + Duration::from_secs(2), "never placed");
        };
        let local = open.local_addr().expect("addr").port();
        assert_eq!(placed, (1, vec![local]));
        assert_eq!(counter.looks.dumps, 0, "no dump taken");
        assert!(counter.looks.probe_placed >= 1);
    }

    /// Once a caller has been seen opening and closing enough connections to a followed port
    /// to be named, the looks only keep that evidence fresh: every [`LOOK_GAP_NAMED`], not as
    /// often as the budget allows (which kept the census thread at twice its share for as
    /// long as a storm lasted).
    #[test]
    fn looks_slow_down_once_a_caller_has_shown_enough_connections_to_be_named() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // A budget that never sets the pace: the floor does.
        let mut counter = SocketCounter::new(&CountersConfig {
            socket_cpu_budget_percent: 100.0,
            ..CountersConfig::default()
        });
        let me = vec![("self".to_owned(), vec![std::process::id()])];
        let t0 = Instant::now();
        assert!(counter.reader.census().census.is_ok(), "a netlink census");
        counter
            .outgoing
            .observe(&counter.proc_root, counter.reader.entries(), &me, t0, 0);
        counter.targets = me;
        counter.looks.ports.insert(port);
        counter.looks.until = Some(t0 + LOOK_SPAN);
        counter.looks.dump_at = Some(t0 + LOOK_SPAN);
        let mut at = t0;
        counter.look(at);
        // A client opening a connection per call, each caught open by one look only.
        let mut gaps = Vec::new();
        for _ in 0..(NAMED_SHORT_LIVED + 3) {
            let call = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let accepted = listener.accept().expect("accept");
            std::thread::sleep(Duration::from_millis(5));
            at += LOOK_GAP;
            counter.look(at);
            drop((call, accepted));
            std::thread::sleep(Duration::from_millis(5));
            at += LOOK_GAP;
            counter.look(at);
            let next = counter.looks.next_at.expect("looking");
            gaps.push((
                counter
                    .outgoing
                    .most_short_lived_to(&counter.looks.ports, at),
                next - at,
            ));
        }
        let (few, enough): (Vec<_>, Vec<_>) =
            gaps.iter().partition(|(n, _)| *n < NAMED_SHORT_LIVED);
        assert!(!few.is_empty() && enough.len() >= 2, "{gaps:?}");
        assert!(few.iter().all(|(_, gap)| *gap < LOOK_GAP_NAMED), "{gaps:?}");
        assert!(
            enough.iter().all(|(_, gap)| *gap == LOOK_GAP_NAMED),
            "{gaps:?}"
        );
    }

    #[test]
    fn a_census_asked_for_is_taken_past_the_budget_at_most_twice_per_gap_and_owes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let mut counter = SocketCounter::new(&CountersConfig {
            socket_source: crate::counters::config::SocketSourceChoice::Proc,
            proc_root: root.path().to_path_buf(),
            // Even a census of three sockets is then due only minutes later.
            socket_cpu_budget_percent: 0.000_001,
            ..CountersConfig::default()
        });
        let count = |c: &Arc<Counted>| {
            let census = c.reading.census.as_ref().expect("census");
            census.by_state.get(SocketState::Established)
        };
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        fake_tcp(root.path(), 3);
        assert_eq!(count(&counter.count(t0, 0, None, None, &[])), 3);
        fake_tcp(root.path(), 5);
        assert_eq!(
            count(&counter.count(at(1), 1_000, None, None, &[])),
            3,
            "over budget"
        );
        let scheduled = counter.budget.next_at;
        // The diagnosis asks, having judged the sample of 1 s: counted now, and the next
        // census is still due when it was.
        assert_eq!(
            count(&counter.count(at(2), 2_000, None, Some(1_000), &[])),
            5
        );
        assert_eq!(
            counter.budget.next_at, scheduled,
            "an overdraft, not a debt"
        );
        // A storm's rise confirmed at a storm's pace but still short of its floor asks once
        // more, a second later: counted too.
        fake_tcp(root.path(), 7);
        assert_eq!(
            count(&counter.count(at(3), 3_000, None, Some(2_000), &[])),
            7,
            "the second of the gap"
        );
        assert_eq!(counter.budget.next_at, scheduled);
        fake_tcp(root.path(), 9);
        assert_eq!(
            count(&counter.count(at(4), 4_000, None, Some(3_000), &[])),
            7,
            "a third within the gap: too soon"
        );
        let gap = CONFIRMING_CENSUS_GAP.as_secs();
        assert_eq!(
            count(&counter.count(at(1 + gap), 9_000, None, Some(8_000), &[])),
            7
        );
        // A judgement of a sample older than the newest census (counted for 3 s) asked a
        // tick late: that census already answers it.
        assert_eq!(
            count(&counter.count(at(2 + gap), 10_000, None, Some(2_500), &[])),
            7
        );
        assert_eq!(
            count(&counter.count(at(2 + gap), 10_000, None, Some(9_000), &[])),
            9
        );
    }

    #[test]
    fn the_sampler_repeats_the_census_and_says_so_when_over_budget() {
        let config = CountersConfig {
            // Any real census costs more than a millionth of a core per second.
            socket_cpu_budget_percent: 0.0001,
            ..CountersConfig::default()
        };
        let mut sampler = NodeSampler::new(&config);
        let first = sampler.sample(0, None);
        let second = sampler.sample(1_000, None);
        assert!(first.sockets.census.is_ok());
        assert!(second.sockets.budget_note.is_some());
        assert_eq!(second.sockets.repeats_unix_ms, Some(0));
        assert_eq!(second.sockets.census.ok(), first.sockets.census.ok());
    }
    #[test]
    fn other_namespaces_sockets_bring_no_census() {
        let root = tempfile::tempdir().unwrap();
        let mut sampler = proc_sampler(root.path());
        let t0 = Instant::now();
        fake_proc(root.path(), 3, 3, 10);
        assert_eq!(established(&sampler.sample_at(t0, 0, None)), 3);
        // Containers churning connections move the node-wide counts only; two sockets of
        // our namespace that no counter of ours saw yet are not counted (as when nothing
        // moved at all: see the test above).
        fake_tcp(root.path(), 5);
        fake_counters(root.path(), 3, 10, 400);
        let sample = sampler.sample_at(t0 + Duration::from_secs(1), 1_000, None);
        assert_eq!(established(&sample), 3);
        assert_eq!(sample.sockets.repeats_unix_ms, Some(0));
    }

    /// Makes `path` a named pipe: a census reading it waits until the test writes it.
    fn make_fifo(path: &Path) {
        let _ = std::fs::remove_file(path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo {}", path.display());
    }

    /// The store's per-sample points of `key` since the first sample.
    fn points(store: &CounterStore, key: &SeriesKey) -> Vec<Option<f32>> {
        let snap = store.snapshot(&crate::counters::store::SnapshotOptions::default());
        snap.history
            .and_then(|h| h.seconds.series.get(key).cloned())
            .unwrap_or_default()
    }

    /// The agent's first census was waited for with no bound: a census that did not return
    /// (a wedged netlink dump, a blocking procfs read) kept every counter of the node, and
    /// the task targets' points with them, from being sampled at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_census_that_does_not_finish_holds_up_no_sample_for_long() {
        let root = tempfile::tempdir().unwrap();
        fake_proc(root.path(), 3, 3, 10);
        // The first census blocks until the test writes `net/tcp`.
        let tcp = root.path().join("net/tcp");
        make_fifo(&tcp);
        let config = CountersConfig {
            interval_ms: 100,
            socket_source: crate::counters::config::SocketSourceChoice::Proc,
            proc_root: root.path().to_path_buf(),
            socket_cpu_budget_percent: 0.0,
            ..CountersConfig::default()
        };
        let store = Arc::new(CounterStore::new(&config));
        let cancel = CancellationToken::new();
        let handle = spawn_sampler(config, Arc::clone(&store), cancel.clone()).unwrap();
        let snapshot = || store.snapshot(&crate::counters::store::SnapshotOptions::default());
        let samples = || {
            snapshot()
                .history
                .map_or(0, |h| h.seconds.times_unix_ms.len())
        };
        // Five intervals for the first census, then a sample every 100 ms.
        let deadline = Instant::now() + Duration::from_secs(3);
        while samples() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (sampled, sources) = (samples(), snapshot().sources);
        // Whatever happens next, the census must not stay blocked.
        let writer = std::thread::spawn(move || std::fs::write(&tcp, tcp_text(4)));
        let estab = SeriesKey::NodeState {
            state: SocketState::Established,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while points(&store, &estab).last().copied().flatten() != Some(4.0) {
            assert!(Instant::now() < deadline, "the census never came in");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        let _ = handle.await;
        let _ = writer.join();
        assert!(
            sampled >= 3,
            "{sampled} samples in 3 s while the first census was blocked"
        );
        let sockets = sources
            .iter()
            .find(|s| s.name.starts_with("sockets."))
            .map(|s| format!("{s:?}"));
        assert!(
            sockets
                .as_deref()
                .is_some_and(|s| s.contains("has not finished yet")),
            "{sockets:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_census_that_takes_long_holds_up_no_sample_and_each_says_how_old_its_count_is() {
        let root = tempfile::tempdir().unwrap();
        fake_proc(root.path(), 3, 3, 10);
        let config = CountersConfig {
            interval_ms: 100,
            socket_source: crate::counters::config::SocketSourceChoice::Proc,
            proc_root: root.path().to_path_buf(),
            socket_cpu_budget_percent: 0.0,
            ..CountersConfig::default()
        };
        let store = Arc::new(CounterStore::new(&config));
        let cancel = CancellationToken::new();
        let handle = spawn_sampler(config, Arc::clone(&store), cancel.clone()).unwrap();
        let samples = || {
            store
                .snapshot(&crate::counters::store::SnapshotOptions::default())
                .history
                .map_or(0, |h| h.seconds.times_unix_ms.len())
        };
        while samples() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The next census blocks until the test writes `net/tcp` (a census of a busy node
        // that takes seconds); the counters moved, so one is due.
        let tcp = root.path().join("net/tcp");
        make_fifo(&tcp);
        fake_counters(root.path(), 5, 12, 9);
        let before = samples();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let during = samples() - before;
        // Read the ages while the census is still blocked: once it is let through, a sample
        // carrying the fresh count may land among the last five.
        let age = SeriesKey::Runtime {
            metric: RuntimeMetric::SocketCensusAge,
        };
        let ages = points(&store, &age);
        // Whatever happens next, the census must not stay blocked.
        let writer = std::thread::spawn(move || std::fs::write(&tcp, tcp_text(5)));
        let estab = SeriesKey::NodeState {
            state: SocketState::Established,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while points(&store, &estab).last().copied().flatten() != Some(5.0) {
            assert!(Instant::now() < deadline, "the census never came in");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        let _ = handle.await;
        let _ = writer.join();
        assert!(
            during >= 5,
            "{during} samples in 1.5 s while the census was taken (every 100 ms: 15)"
        );
        // The samples taken meanwhile repeated the census before, each a sample older.
        let waiting: Vec<f32> = ages.iter().rev().take(5).flatten().copied().collect();
        assert!(
            waiting.len() == 5 && waiting.windows(2).all(|w| w[0] > w[1] && w[1] > 0.0),
            "census ages while it was taken: {ages:?}"
        );
    }
}
