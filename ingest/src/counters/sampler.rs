//! The sampler: a tokio task that reads every counter source once per interval and writes the
//! results into the [`CounterStore`].
//!
//! Each tick runs the blocking reads (netlink, /proc) on the blocking pool and records the node
//! sample as soon as they are done. Every HTTP task target is scraped by its own loop on the
//! same interval, bounded by the target's timeout, and its outcome recorded when it arrives; a
//! sample's history point carries each target's latest outcome, as it does for counts pushed
//! over OTLP. So a wedged target, even one whose timeout exceeds the interval, costs the node
//! history nothing and the other targets nothing. A tick that overruns the interval delays the
//! next one instead of piling up (missed ticks are skipped). No source failure ends a loop;
//! only the cancellation token does. The socket census, whose cost grows with the node's
//! sockets, is kept within `socket_cpu_budget_percent` of a core (the private `CensusBudget`),
//! and is taken again only when the kernel's socket counters moved since the last one, or
//! [`QUIET_CENSUS_MAX_AGE`] after it (the private `QuietCensus`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{CountersConfig, CountersConfigError, ProcessTarget, TaskKind, TaskTarget};
use super::error::CounterError;
use super::owners::{PortOwner, PortOwners};
use super::proc_net::{read_protocol_counters, read_sockstat};
use super::process::{read_process, ProcessWatcher};
use super::reader::{CensusReading, SocketReader};
use super::runtime::RuntimeCounters;
use super::sockets::SocketCensus;
use super::store::{CounterStore, NodeSample};
use super::tasks::scrape;

/// The blocking half of the sampler: everything read from the kernel.
#[derive(Debug)]
pub struct NodeSampler {
    proc_root: PathBuf,
    reader: SocketReader,
    watcher: ProcessWatcher,
    processes: Vec<ProcessTarget>,
    budget: CensusBudget,
    quiet: QuietCensus,
    owners: PortOwners,
}

/// The longest a census is repeated while the kernel's socket counters stand still. Sockets
/// can change state without moving any of [`SOCKET_ACTIVITY`]: a connection whose remote peer
/// hangs up goes from ESTABLISHED to CLOSE_WAIT, an accept queue drains, and no counter says
/// so; such a change is counted within this long (a CLOSE_WAIT leak grows over minutes, and
/// #11's counter-only incidents are raised within 10 s of their start).
pub const QUIET_CENSUS_MAX_AGE: Duration = Duration::from_secs(5);

/// The kernel counters that move whenever a TCP socket is opened, accepted, refused, reset,
/// closed by its process (orphaned) or enters or leaves TIME_WAIT (`/proc/net/sockstat{,6}`,
/// `snmp`, `netstat`, already read every sample). While none of them moves, a new census would
/// count what the last one counted (up to the changes [`QUIET_CENSUS_MAX_AGE`] is for): on a
/// node whose connections are kept alive, that is most seconds. The full netlink dump walks
/// the kernel's whole established hash (all network namespaces' sockets, 262,144 buckets
/// here): 1.5–5 ms of kernel time each second, a quarter of the agent's 1 % budget.
/// `TCP orphan` and `TCP alloc` are node-wide even in a network namespace: with them, a
/// census is taken whenever any namespace's sockets churn — more often than needed there,
/// never less.
const SOCKET_ACTIVITY: [&str; 14] = [
    "TCP inuse",
    "TCP orphan",
    "TCP tw",
    "TCP alloc",
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

/// Repeats the last census while the socket counters have not moved since it was taken
/// (see [`SOCKET_ACTIVITY`]), for at most [`QUIET_CENSUS_MAX_AGE`].
#[derive(Debug, Default)]
struct QuietCensus {
    last: Option<LastCensus>,
}

/// The last census with its netlink problem and budget note, when it was taken (and for
/// the sample of which Unix ms), and the counters read just before it.
#[derive(Debug)]
struct LastCensus {
    census: SocketCensus,
    netlink_problem: Option<String>,
    budget_note: Option<String>,
    at: Instant,
    time_unix_ms: i64,
    activity: SocketActivity,
}

impl QuietCensus {
    /// The last census again, when nothing counted has moved since it at `now`.
    fn repeat(&self, now: Instant, activity: Option<&SocketActivity>) -> Option<CensusReading> {
        let last = self.last.as_ref()?;
        if activity != Some(&last.activity)
            || now.saturating_duration_since(last.at) >= QUIET_CENSUS_MAX_AGE
        {
            return None;
        }
        Some(CensusReading {
            census: Ok(last.census.clone()),
            netlink_problem: last.netlink_problem.clone(),
            budget_note: last.budget_note.clone(),
            repeats_unix_ms: Some(last.time_unix_ms),
        })
    }

    /// Keeps the census of `reading`, taken at `at` for the sample of `time_unix_ms` after the
    /// counters read `activity`.
    fn book(
        &mut self,
        at: Instant,
        time_unix_ms: i64,
        activity: Option<SocketActivity>,
        reading: &CensusReading,
    ) {
        self.last = match (activity, &reading.census) {
            (Some(activity), Ok(census)) => Some(LastCensus {
                census: census.clone(),
                netlink_problem: reading.netlink_problem.clone(),
                budget_note: reading.budget_note.clone(),
                at,
                time_unix_ms,
                activity,
            }),
            _ => None,
        };
    }
}

/// Keeps the socket census within `socket_cpu_budget_percent` of a core: after a census that
/// cost `c` of CPU, the next one waits until `c / budget` has passed since this one began.
/// Between censuses every sample repeats the last one, so the history keeps one point per
/// sample, and the source's status says how often the sockets are really counted.
#[derive(Debug)]
struct CensusBudget {
    /// Share of one core (0: no limit).
    share: f64,
    interval: Duration,
    /// While the budget stretches the census interval: the last census, its netlink problem,
    /// the status note and the sample time it was taken for (Unix ms).
    held: Option<(SocketCensus, Option<String>, String, i64)>,
    next_at: Option<Instant>,
}

impl CensusBudget {
    /// The last census again, when the next one is not due yet at `now`.
    fn repeat(&self, now: Instant) -> Option<CensusReading> {
        if self.next_at.is_none_or(|at| now >= at) {
            return None;
        }
        let (census, problem, note, counted) = self.held.as_ref()?;
        Some(CensusReading {
            census: Ok(census.clone()),
            netlink_problem: problem.clone(),
            budget_note: Some(note.clone()),
            repeats_unix_ms: Some(*counted),
        })
    }

    /// Books a census that began at `began` (for the sample of `time_unix_ms`) and cost
    /// `cpu`, and notes in `reading` when the budget stretches the census interval.
    fn book(
        &mut self,
        began: Instant,
        time_unix_ms: i64,
        cpu: Duration,
        reading: &mut CensusReading,
    ) {
        self.held = None;
        self.next_at = None;
        if self.share <= 0.0 {
            return;
        }
        let period = cpu.div_f64(self.share);
        // Half an interval of slack: a census due a little after a tick runs at that tick.
        let Ok(census) = &reading.census else { return };
        if period <= self.interval + self.interval / 2 {
            return;
        }
        let note = format!(
            "counted every {:.1} s, not every sample: a census costs {:.0} ms of CPU and \
             socket_cpu_budget_percent is {}",
            period.as_secs_f64(),
            cpu.as_secs_f64() * 1e3,
            self.share * 100.0
        );
        reading.budget_note = Some(note.clone());
        self.held = Some((
            census.clone(),
            reading.netlink_problem.clone(),
            note,
            time_unix_ms,
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

impl NodeSampler {
    /// A node sampler for `config` (socket source, proc root, process targets, CPU budget).
    pub fn new(config: &CountersConfig) -> NodeSampler {
        NodeSampler {
            proc_root: config.proc_root.clone(),
            reader: SocketReader::new(config.socket_source, config.proc_root.clone()),
            watcher: ProcessWatcher::new(config.proc_root.clone()),
            processes: config.processes.clone(),
            budget: CensusBudget {
                share: config.socket_cpu_budget_percent / 100.0,
                interval: config.interval(),
                held: None,
                next_at: None,
            },
            quiet: QuietCensus::default(),
            owners: PortOwners::new(),
        }
    }

    /// The processes holding the listening sockets of the last census (cached; the process
    /// table is scanned only for listeners not placed yet). Blocking, like [`Self::sample`].
    pub fn port_owners(&mut self) -> Vec<PortOwner> {
        self.owners.resolve(&self.proc_root, self.reader.entries())
    }

    /// Reads every node source once. Blocking: call it from a blocking thread.
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
        let sockstat = read_sockstat(&self.proc_root);
        let protocol = read_protocol_counters(&self.proc_root);
        let activity = socket_activity(&sockstat, &protocol);
        let repeated = self
            .budget
            .repeat(now)
            .or_else(|| self.quiet.repeat(now, activity.as_ref()));
        let sockets = match repeated {
            Some(held) => held,
            None => {
                let cpu = thread_cpu();
                let mut reading = self.reader.census();
                let cost = thread_cpu().saturating_sub(cpu);
                self.budget.book(now, time_unix_ms, cost, &mut reading);
                self.quiet.book(now, time_unix_ms, activity, &reading);
                reading
            }
        };
        let entries = self.reader.entries();
        let processes = self
            .processes
            .iter()
            .map(|t| (t.name.clone(), self.watcher.read(t, entries)))
            .collect();
        NodeSample {
            time_unix_ms,
            sockets,
            sockstat,
            protocol,
            processes,
            // The agent's own pid is only meaningful in its own procfs.
            agent_process: read_process(Path::new("/proc"), std::process::id()).ok(),
            runtime,
            scrapes: Vec::new(),
        }
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
        let blocking = tokio::task::spawn_blocking(move || {
            let sample = sampler.sample(now, runtime);
            let owners = sampler.port_owners();
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
                store.record_port_owners(owners);
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
    use crate::counters::sockets::{SocketSource, DEFAULT_EPHEMERAL_PORTS};

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
            held: None,
            next_at: None,
        }
    }

    #[test]
    fn an_expensive_census_is_repeated_until_the_budget_allows_the_next() {
        let mut b = budget(1.0);
        let t0 = Instant::now();
        let mut r = reading();
        // 50 ms at 1 %: one census per 5 s.
        b.book(t0, 7_000, Duration::from_millis(50), &mut r);
        let note = r.budget_note.clone().unwrap_or_default();
        assert!(note.starts_with("counted every 5.0 s"), "{note}");
        let held = b.repeat(t0 + Duration::from_secs(1)).expect("held");
        assert_eq!(held.census.ok(), r.census.ok());
        assert_eq!(held.budget_note.as_deref(), Some(note.as_str()));
        assert_eq!(held.repeats_unix_ms, Some(7_000), "the census repeated");
        assert_eq!(r.repeats_unix_ms, None, "counted for its own sample");
        assert!(
            b.repeat(t0 + Duration::from_millis(4_500)).is_none(),
            "due again"
        );
    }

    #[test]
    fn a_cheap_census_a_failed_one_or_no_budget_runs_every_sample() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut b = budget(2.0);
        let mut r = reading();
        b.book(t0, 7_000, Duration::from_millis(8), &mut r);
        assert!(r.budget_note.is_none() && b.repeat(later).is_none());
        let mut failed = CensusReading::of(Err(
            crate::counters::error::CounterError::NetlinkMalformed("x".into()),
        ));
        b.book(t0, 7_000, Duration::from_millis(500), &mut failed);
        assert!(b.repeat(later).is_none());
        let mut unlimited = budget(0.0);
        let mut r = reading();
        unlimited.book(t0, 7_000, Duration::from_secs(1), &mut r);
        assert!(r.budget_note.is_none() && unlimited.repeat(later).is_none());
    }

    /// A procfs with `established` sockets in `net/tcp` and the socket counters given.
    fn fake_proc(root: &Path, established: usize, inuse: usize, active_opens: u64) {
        let net = root.join("net");
        std::fs::create_dir_all(&net).unwrap();
        let mut tcp = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for i in 0..established {
            tcp.push_str(&format!(
                "{i:4}: 0100007F:{:04X} 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 0\n",
                40_000 + i
            ));
        }
        std::fs::write(net.join("tcp"), tcp).unwrap();
        std::fs::write(
            net.join("sockstat"),
            format!("sockets: used 9\nTCP: inuse {inuse} orphan 0 tw 0 alloc 9 mem 1\n"),
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

    #[test]
    fn the_census_is_taken_again_when_the_socket_counters_move_or_it_is_old() {
        let root = tempfile::tempdir().unwrap();
        let config = CountersConfig {
            socket_source: crate::counters::config::SocketSourceChoice::Proc,
            proc_root: root.path().to_path_buf(),
            ..CountersConfig::default()
        };
        let mut sampler = NodeSampler::new(&config);
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
}
