//! The diagnosis loop: once a second, the counter anomalies and the incidents over the
//! agent's stores, kept on an [`IncidentBoard`] that the web's `DiagnosisView` and the
//! exporter read.
//!
//! Execution model: one tokio task ([`run`]) ticks every `[diagnosis] interval_ms`; each tick
//! reads the stores through the same read-only views the web serves (counters snapshot,
//! emerging patterns, recent call chains), runs the pure diagnosis of `faultline-diagnosis`
//! on a blocking thread (it sorts a few hundred series of a few hundred points: a few
//! milliseconds, not for the async workers) and replaces the document the web reads. A tick
//! that overruns delays the next one (missed ticks are skipped, never queued).
//!
//! Restarts. A pattern stops emerging once its onset leaves the emergence window, and only
//! kept incidents keep it diagnosed after that; an agent restarted during a long outage would
//! find the outage's pattern neither new nor kept, and raise nothing. So the loop records the
//! patterns of its active incidents with their onsets ([`ONGOING_FILE`] in the data
//! directory, replaced atomically when they change), and a restarted agent diagnoses those
//! still occurring with their recorded onset: the incident is back within a tick of the first
//! new error, marked as ongoing at start (see `Incident::ongoing_at_start`).
//!
//! Bounds: at most [`MAX_PATTERNS`] emerging patterns and [`MAX_CHAINS`] recent call chains
//! are read per tick; the document lists at most [`MAX_UNJUDGED`] unjudged series; at most
//! [`MAX_ONGOING`] patterns are recorded for a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use faultline_diagnosis::anomaly::cached::Detector;
use faultline_diagnosis::anomaly::{AnomalyConfig, SeriesLimit, ServiceStart};
use faultline_diagnosis::culprit::ListenerSource;
use faultline_diagnosis::hints::HintRules;
use faultline_diagnosis::incident::{
    self, ConnectionsTo, DiagnosisInput, Incident, IncidentTracker, PatternCulprit, PatternInput,
    SeriesOfInterest, ServiceFacts,
};
use faultline_diagnosis::{CounterHistory, CounterSeries};
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::{SpanKind, TraceStore};
use faultline_ingest::SpanId;
use faultline_series::{PortSide, ProcessMetric, RuntimeMetric, SeriesKey, SocketState};
use faultline_web::model::{self as web, CountersSnapshot, IncidentsDocument};
use faultline_web::Views;
use serde::{Deserialize, Serialize};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::persist::atomic::atomic_write;
use crate::views::KeptCounters;

/// Most patterns read per tick (the most significant emerging ones first, then the still
/// occurring patterns of kept incidents).
pub const MAX_PATTERNS: usize = 30;
/// Most trace ids read per pattern.
pub const MAX_TRACES_PER_PATTERN: usize = 20;
/// Most recent call chains read per tick to learn who calls whom and who listens where.
pub const MAX_CHAINS: usize = 30;
/// Most unjudged series listed in the document (the rest are counted).
pub const MAX_UNJUDGED: usize = 200;
/// File in the data directory recording the patterns of the active incidents.
pub const ONGOING_FILE: &str = "incidents.json";
/// Most patterns recorded for a restart (the incidents' first ones).
pub const MAX_ONGOING: usize = 200;

/// What the diagnosis loop needs from the configuration.
#[derive(Debug, Clone)]
pub struct DiagnosisSettings {
    /// Time between runs.
    pub interval: Duration,
    /// The anomaly detector's windows.
    pub anomalies: AnomalyConfig,
    /// The hint rules in force (shipped plus the user's).
    pub rules: HintRules,
}

/// The latest incidents document, shared with the web, and what the run that made it knew of
/// the node's services ("what moved" relates its candidates to a pattern's services with it).
#[derive(Debug, Default)]
pub struct IncidentBoard {
    doc: RwLock<Arc<IncidentsDocument>>,
    facts: RwLock<Arc<NodeFacts>>,
}

/// What one diagnosis run knew of the node's services.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// Who listens and calls where, their processes and task targets.
    pub services: Vec<ServiceFacts>,
    /// The services that (re)started while the agent watched.
    pub starts: Vec<ServiceStart>,
}

impl IncidentBoard {
    /// The latest incidents document (an empty one before the first run). Called on every
    /// request and export: the document is behind an `Arc`, replaced after each run.
    pub fn incidents(&self) -> Arc<IncidentsDocument> {
        match self.doc.read() {
            Ok(doc) => doc.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the document the web serves.
    pub(crate) fn set(&self, doc: IncidentsDocument) {
        replace(&self.doc, Arc::new(doc));
    }

    /// Replaces what is known of the node's services.
    pub(crate) fn set_facts(&self, facts: Arc<NodeFacts>) {
        replace(&self.facts, facts);
    }

    /// What the latest diagnosis run knew of the node's services (nothing before the first).
    pub fn facts(&self) -> Arc<NodeFacts> {
        match self.facts.read() {
            Ok(facts) => facts.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn replace<T>(slot: &RwLock<Arc<T>>, value: Arc<T>) {
    match slot.write() {
        Ok(mut slot) => *slot = value,
        // A writer panicked mid-assignment of an Arc: the old value is intact.
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

/// The service facts the configuration gives: each `[[tasks]]` target's goroutine page and
/// each `[[counters.processes]]` target's listening port; and where to read who listens on
/// which port now.
#[derive(Debug, Clone, Default)]
pub struct ConfiguredFacts {
    /// Task target name → its goroutine dump with stacks.
    pub goroutine_urls: BTreeMap<String, String>,
    /// Process target name → the port it listens on: a service of the node even before any
    /// span names it, so its port's counters are a known service's.
    pub listen_ports: BTreeMap<String, u16>,
    /// Who listens on the node's ports, as the services' spans and the configured process
    /// targets say: a callee that hangs sends no span, so recent call chains alone lose its
    /// port just when its counters move.
    pub listeners: Option<crate::culprits::NodeListeners>,
    /// Where each service's requests and failures per second are counted (from its SERVER
    /// spans and access lines): judged beside the node's counters.
    pub traces: Option<Traffic>,
    /// Where a leaking service's goroutines wait, as [`crate::stacks`] last read it.
    pub stacks: Arc<crate::stacks::StackBoard>,
    /// The counter store, read for the new points only at each run (see [`KeptCounters`]);
    /// without it each run reads the whole snapshot through the views.
    pub counters: Option<Arc<CounterStore>>,
}

/// The trace store, read for the services' request and failure rates.
#[derive(Clone)]
pub struct Traffic(pub Arc<TraceStore>);

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traffic")
    }
}

impl ConfiguredFacts {
    /// From the `[[tasks]]` targets (name, url).
    pub fn from_tasks<'a>(tasks: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        ConfiguredFacts {
            goroutine_urls: tasks
                .into_iter()
                .filter_map(|(name, url)| stack_dump_url(url).map(|u| (name.to_owned(), u)))
                .collect(),
            listen_ports: BTreeMap::new(),
            listeners: None,
            traces: None,
            stacks: Arc::default(),
            counters: None,
        }
    }

    /// Adds the `[[counters.processes]]` targets found by their listening port (name, port).
    pub fn with_listeners<'a>(mut self, targets: impl IntoIterator<Item = (&'a str, u16)>) -> Self {
        self.listen_ports.extend(
            targets
                .into_iter()
                .map(|(name, port)| (name.to_owned(), port)),
        );
        self
    }
}

/// The pprof page with every goroutine's stack (`debug=2`) for a task target's URL: a pprof
/// goroutine page at another debug level, or the pprof page of an expvar/metrics URL's host.
fn stack_dump_url(url: &str) -> Option<String> {
    let (base, _) = url.split_once('?').unwrap_or((url, ""));
    if base.ends_with("/debug/pprof/goroutine") {
        return Some(format!("{base}?debug=2"));
    }
    let after_scheme = url.find("://")? + 3;
    let host_end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    Some(format!(
        "{}/debug/pprof/goroutine?debug=2",
        &url[..host_end]
    ))
}

/// The patterns of the active incidents and their onsets, as recorded for a restart
/// ([`ONGOING_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format")]
enum OngoingFile {
    /// Format 1.
    #[serde(rename = "1")]
    V1 {
        /// Pattern id → onset of its incident (Unix ms).
        patterns: BTreeMap<String, i64>,
    },
}

/// Reads the patterns a previous run recorded; an unreadable file is reported and counts as
/// none (the agent still starts).
fn read_ongoing(path: &Path) -> BTreeMap<String, i64> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read the incidents of the previous run: {e}");
            return BTreeMap::new();
        }
    };
    match serde_json::from_slice::<OngoingFile>(&bytes) {
        Ok(OngoingFile::V1 { patterns }) => patterns,
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring the incidents of the previous run: {e}");
            BTreeMap::new()
        }
    }
}

/// The patterns of the active incidents with their incidents' onsets (at most
/// [`MAX_ONGOING`]).
fn ongoing_patterns(doc: &IncidentsDocument) -> BTreeMap<String, i64> {
    doc.incidents
        .iter()
        .filter(|i| i.active)
        .flat_map(|i| i.patterns.iter().map(|p| (p.id.clone(), i.onset_unix_ms)))
        .take(MAX_ONGOING)
        .collect()
}

/// Runs the diagnosis every `settings.interval` until `stop`. `state_dir` is the data
/// directory, where the patterns of the active incidents are recorded for a restart.
pub async fn run(
    views: Views,
    board: Arc<IncidentBoard>,
    settings: DiagnosisSettings,
    facts: ConfiguredFacts,
    api: String,
    state_dir: Option<PathBuf>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let path = state_dir.map(|d| d.join(ONGOING_FILE));
    let restored = path.as_deref().map(read_ongoing).unwrap_or_default();
    let mut tracker = Kept::started_at(now_unix_ms(), restored.clone());
    let mut written = restored;
    let settings = Arc::new(settings);
    let facts = Arc::new(facts);
    // When the counters are sampled at the diagnosis' own pace (the defaults: every second),
    // each pass follows a node sample: a pass at a random phase of the sampler's second reads
    // a sample up to a second old, twice in a TIME-WAIT storm confirmed by a census asked for
    // (seen on the unseen lab beside 25,000 other sockets: passes read samples 1.1 s old).
    // Without a sample for half an interval more (the sampler stalled), a pass runs anyway.
    let interval = settings.interval.max(Duration::from_millis(100));
    let counters = facts
        .counters
        .clone()
        .filter(|store| store.interval() == interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = pass_due(counters.as_deref(), &mut tick, interval) => {}
        }
        let views = views.clone();
        let settings = settings.clone();
        let facts = facts.clone();
        let api = api.clone();
        let path = path.clone();
        let before = std::mem::take(&mut written);
        let job = tokio::task::spawn_blocking(move || {
            let doc = diagnose(&views, &mut tracker, &settings, &facts, &api, now_unix_ms());
            let ongoing = ongoing_patterns(&doc);
            let mut written = before;
            if let (Some(path), true) = (&path, ongoing != written) {
                let file = OngoingFile::V1 {
                    patterns: ongoing.clone(),
                };
                match serde_json::to_vec(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|b| atomic_write(path, &b, None).map_err(|e| e.to_string()))
                {
                    Ok(()) => written = ongoing,
                    Err(e) => tracing::warn!("cannot record the active incidents: {e}"),
                }
            }
            (tracker, doc, written)
        });
        match job.await {
            Ok((kept, doc, now_written)) => {
                tracker = kept;
                written = now_written;
                board.set(doc);
                board.set_facts(tracker.latest.clone());
            }
            Err(err) => {
                tracing::error!("the diagnosis failed and restarts empty: {err}");
                tracker = Kept::default();
            }
        }
    }
}

/// Resolves when the next pass is due: at the next node sample of `counters` (at most an
/// interval and a half from now), else at the next `tick`.
async fn pass_due(counters: Option<&CounterStore>, tick: &mut Interval, interval: Duration) {
    match counters {
        Some(store) => tokio::select! {
            _ = store.sampled() => {}
            _ = tokio::time::sleep(interval + interval / 2) => {}
        },
        None => {
            tick.tick().await;
        }
    }
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the diagnosis keeps from one run to the next.
#[derive(Debug, Default)]
pub struct Kept {
    /// The incidents.
    pub tracker: IncidentTracker,
    /// Patterns of the incidents a previous run of the agent had active, with their onsets:
    /// diagnosed while they still occur (dropped once they do not, or once an incident holds
    /// them).
    restored: BTreeMap<String, i64>,
    /// When the agent started (Unix ms; 0 when not a live agent).
    started_unix_ms: i64,
    /// The latest process id of each watched process, and when it was last seen (Unix ms).
    pids: BTreeMap<String, (u32, i64)>,
    /// When each watched process last stopped and started again (a new process id).
    restarted: BTreeMap<String, Restarted>,
    /// What the latest run knew of the node's services.
    pub latest: Arc<NodeFacts>,
    /// Who called whom and which ports, as recent call chains said, and when last seen.
    calls: KnownCalls,
    /// How long the runs took.
    runs: RunTimes,
    /// The anomaly detector, with what it last found of each series: a run judges in full
    /// only the series that moved, are new or are due (see `anomaly::cached`).
    detector: Detector,
    /// The counters' history as read so far (a run reads the new points only).
    counters: KeptCounters,
}

/// A watched process that started again: when its old process was last seen, and when the
/// agent first read the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Restarted {
    /// Just after the old process was last seen (Unix ms).
    stopped_unix_ms: i64,
    /// The new process's first point (Unix ms), not before `stopped_unix_ms`.
    started_unix_ms: i64,
}

/// How long the diagnosis runs took: counts since the start and the durations of the last
/// minute's runs (at most [`RUN_TIMES_KEPT`]).
#[derive(Debug, Default)]
struct RunTimes {
    runs: u64,
    overran: u64,
    /// (when it started, Unix ms; its duration, ms), oldest first.
    recent: std::collections::VecDeque<(i64, u64)>,
}

/// When each phase of one run ended (ms since the run started), for the log line of a slow
/// run.
#[derive(Debug, Default)]
struct Phases(Vec<(&'static str, u128)>);

impl Phases {
    fn mark(&mut self, phase: &'static str, started: std::time::Instant) {
        self.0.push((phase, started.elapsed().as_millis()));
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut before = 0;
        for (i, (phase, at)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{phase} {} ms", at - before)?;
            before = *at;
        }
        Ok(())
    }
}

/// Most run durations kept for the slowest of the last minute (one a second at most, unless
/// the interval is configured shorter).
const RUN_TIMES_KEPT: usize = 600;

impl RunTimes {
    /// Notes a run that started at `now` and took `duration_ms`, and says how the runs keep
    /// up with `interval`.
    fn note(&mut self, now: i64, duration_ms: u64, interval: Duration) -> web::DiagnosisRun {
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.runs += 1;
        if duration_ms > interval_ms {
            self.overran += 1;
        }
        self.recent.push_back((now, duration_ms));
        while self.recent.len() > RUN_TIMES_KEPT
            || self.recent.front().is_some_and(|(at, _)| now - at > 60_000)
        {
            self.recent.pop_front();
        }
        web::DiagnosisRun {
            interval_ms,
            duration_ms,
            slowest_ms_1m: self.recent.iter().map(|(_, d)| *d).max().unwrap_or(0),
            runs: self.runs,
            overran: self.overran,
            counters_sampled_at_unix_ms: 0,
            series_judged_in_full: 0,
            series_deferred: 0,
        }
    }
}

/// Calls seen in call chains (caller → callee, caller → port), with when each was last seen
/// (Unix ms): the recent chains alone forget a call just when it fails (a caller whose
/// lookups fail makes no call at all, and its callee's silence is the evidence).
#[derive(Debug, Default)]
struct KnownCalls {
    edges: BTreeMap<(String, String), i64>,
    ports: BTreeMap<(String, u16), i64>,
}

/// How long a call is remembered after it was last seen.
pub const CALL_MEMORY_MS: i64 = 30 * 60_000;
/// Most calls remembered of each kind (the least recently seen leave first).
pub const MAX_KNOWN_CALLS: usize = 4096;

impl KnownCalls {
    /// Notes the calls seen now and forgets the old ones.
    fn note(
        &mut self,
        edges: &BTreeSet<(String, String)>,
        ports: &BTreeSet<(String, u16)>,
        now: i64,
    ) {
        for e in edges {
            self.edges.insert(e.clone(), now);
        }
        for p in ports {
            self.ports.insert(p.clone(), now);
        }
        forget(&mut self.edges, now);
        forget(&mut self.ports, now);
    }
}

fn forget<K: Ord + Clone>(seen: &mut BTreeMap<K, i64>, now: i64) {
    seen.retain(|_, at| now - *at <= CALL_MEMORY_MS);
    while seen.len() > MAX_KNOWN_CALLS {
        let Some(oldest) = seen
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        seen.remove(&oldest);
    }
}

impl Kept {
    /// What an agent started at `started_unix_ms` keeps, with the patterns its previous run
    /// had in active incidents (pattern id → onset).
    pub fn started_at(started_unix_ms: i64, restored: BTreeMap<String, i64>) -> Kept {
        Kept {
            tracker: IncidentTracker::started_at(started_unix_ms),
            restored,
            started_unix_ms,
            ..Kept::default()
        }
    }

    /// Notes the watched processes' ids. A process whose id changed stopped after the old
    /// one was last seen and started again with the new one's first point: the baselines
    /// of its series begin there. Its stop (its clients' connections closed, its TIME-WAIT,
    /// its requests gone) is kept beside it: it shows in the counters before the new
    /// process is found, sometimes for a minute (a redeploy). A target not found for a
    /// moment (id 0) is no restart: the same id may come back.
    fn note_pids(&mut self, counters: &CountersSnapshot, now: i64) {
        for p in &counters.processes {
            if p.pid == 0 {
                continue;
            }
            if let Some((old, seen)) = self.pids.insert(p.name.clone(), (p.pid, now)) {
                if old != p.pid {
                    let stopped = seen + 1;
                    let started = first_sight(counters, p)
                        .unwrap_or(now)
                        .clamp(stopped, now.max(stopped));
                    self.restarted.insert(
                        p.name.clone(),
                        Restarted {
                            stopped_unix_ms: stopped,
                            started_unix_ms: started,
                        },
                    );
                }
            }
        }
    }

    /// The services that started again while the agent watched, with the series they own;
    /// and, for each, the services it calls directly or through others: their requests come
    /// through it, so their request rates restart with it (a drained restart of an edge
    /// empties its callees' traffic for as long as it takes).
    fn starts(&self, services: &[ServiceFacts]) -> Vec<ServiceStart> {
        let mut out = Vec::new();
        for (process, restarted) in &self.restarted {
            let (at, stopped) = (restarted.started_unix_ms, restarted.stopped_unix_ms);
            let facts = services.iter().find(|s| s.processes.contains(process));
            let service = facts.map_or(process.clone(), |f| f.service.clone());
            let mut below: Vec<String> = Vec::new();
            let mut todo = vec![service.clone()];
            while let Some(s) = todo.pop() {
                let Some(f) = services.iter().find(|x| x.service == s) else {
                    continue;
                };
                // Each service is pushed once: bounded by the services known.
                for c in &f.callees {
                    if *c != service && !below.contains(c) {
                        below.push(c.clone());
                        todo.push(c.clone());
                    }
                }
            }
            out.push(ServiceStart {
                service,
                at_unix_ms: at,
                stopped_unix_ms: Some(stopped),
                ports: facts.map(|f| f.listen_ports.clone()).unwrap_or_default(),
                task_targets: facts
                    .map(|f| f.task_targets.clone())
                    .unwrap_or_else(|| vec![process.clone()]),
                processes: vec![process.clone()],
            });
            out.extend(below.into_iter().map(|callee| ServiceStart {
                service: callee,
                at_unix_ms: at,
                stopped_unix_ms: Some(stopped),
                ..ServiceStart::default()
            }));
        }
        out
    }
}

/// When the agent first read process target `p` as it runs now: the first of the points its
/// open fds have without a gap up to the latest (a target not found has no point), or
/// `None` when it has no point. A process replaced between two samples leaves no gap: its
/// first point is then its old one's, and the caller keeps the restart after the old
/// process was last seen.
fn first_sight(counters: &CountersSnapshot, p: &web::ProcessSeries) -> Option<i64> {
    let points = &p.fds.points;
    let last = points.iter().rposition(Option::is_some)?;
    let first = points[..last]
        .iter()
        .rposition(Option::is_none)
        .map_or(0, |gap| gap + 1);
    let at = i64::try_from(first)
        .ok()?
        .checked_mul(counters.step_ms.max(1))?;
    counters.history_start_unix_ms.checked_add(at)
}

/// One run over the stores.
pub fn diagnose(
    views: &Views,
    kept: &mut Kept,
    settings: &DiagnosisSettings,
    facts: &ConfiguredFacts,
    api: &str,
    now: i64,
) -> IncidentsDocument {
    let started = std::time::Instant::now();
    let mut phases = Phases::default();
    let mut snapshot = match &facts.counters {
        Some(store) => kept.counters.snapshot(store, now),
        None => views.counters.snapshot(),
    };
    kept.note_pids(&snapshot, now);
    let (mut history, limits) = counter_history(&mut snapshot);
    if let Some(traces) = &facts.traces {
        let traffic = crate::views::traffic_series(traces.0.traffic(), history.axis());
        history.series.extend(traffic);
    }
    phases.mark("counters", started);
    // For its first minute the agent is catching up with what happened while it was down:
    // a restored pattern is not judged ended before that.
    let catching_up = now - kept.started_unix_ms <= incident::ACTIVE_MS;
    let patterns = diagnosed_patterns(
        views,
        kept.tracker.incidents(),
        &mut kept.restored,
        catching_up,
        now,
    );
    phases.mark("patterns", started);
    let services = service_facts(views, &snapshot, &patterns, facts, &mut kept.calls, now);
    let starts = kept.starts(&services);
    kept.latest = Arc::new(NodeFacts {
        services: services.clone(),
        starts: starts.clone(),
    });
    phases.mark("services", started);
    // On a busy node the other programs' ports need more judgements than a pass makes: the
    // services' series and the incidents' are served first.
    let interest = SeriesOfInterest::new(&services, kept.tracker.incidents());
    let report =
        kept.detector
            .detect_first(&history, &limits, &starts, &settings.anomalies, &|key| {
                interest.contains(key)
            });
    let judged = kept.detector.last_pass();
    phases.mark("anomalies", started);
    let agent_ports = match &facts.listeners {
        Some(node) => {
            // The services' ports (spans', configured) have their listen queues recorded
            // from the next sample on, not only while among the fullest N.
            node.counters
                .watch_service_ports(services.iter().flat_map(|s| s.listen_ports.iter().copied()));
            node.counters.agent_ports()
        }
        None => Vec::new(),
    };
    let tracker = &mut kept.tracker;
    let incidents = tracker
        .update(
            &DiagnosisInput {
                now_unix_ms: now,
                patterns: &patterns,
                anomalies: &report,
                services: &services,
                history: &history,
                api: Some(api),
                agent_ports: &agent_ports,
            },
            &settings.rules,
        )
        .to_vec();
    // A TIME-WAIT rise of the services' seen by one census only is raised once a second one
    // confirms it, a storm's pace judged from one census is a lower bound, and a storm's pace
    // confirmed a second after its first census may still be short of a storm's rise: a fresh
    // census tells each, rather than the next one the census budget allows (3–7 s later on a
    // busy node).
    let unconfirmed = report
        .awaiting_census
        .iter()
        .any(|key| interest.contains(key));
    if unconfirmed || tracker.wants_a_census() {
        if let Some(node) = &facts.listeners {
            node.counters.ask_for_census(snapshot.sampled_at_unix_ms);
        }
    }
    let omitted = report.unjudged.len().saturating_sub(MAX_UNJUDGED) as u64;
    // The services' series first (in the report's order each), so that thousands of other
    // programs' ports left for a later pass do not push them out of the list.
    let (mut unjudged, others): (Vec<_>, Vec<_>) = report
        .unjudged
        .into_iter()
        .partition(|u| interest.contains(&u.key));
    unjudged.extend(others);
    unjudged.truncate(MAX_UNJUDGED);
    let node_signals = tracker.node_signals().to_vec();
    phases.mark("incidents", started);
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let run = web::DiagnosisRun {
        counters_sampled_at_unix_ms: snapshot.sampled_at_unix_ms,
        series_judged_in_full: judged.judged,
        series_deferred: judged.deferred,
        ..kept.runs.note(now, duration_ms, settings.interval)
    };
    if duration_ms > run.interval_ms {
        tracing::debug!(
            duration_ms,
            series = history.series.len(),
            points = history.len(),
            "a diagnosis run overran its interval: {phases}"
        );
    }
    tracing::trace!(
        duration_ms,
        points = history.len(),
        kept = judged.kept,
        kept_unjudged = judged.kept_unjudged,
        deferred = judged.deferred,
        counter_reads = ?kept.counters.reads(),
        "a diagnosis run: {phases}; series judged in full: {}",
        judged.why
    );
    IncidentsDocument {
        evaluated_at_unix_ms: now,
        series_judged: report.series_judged,
        unjudged,
        unjudged_omitted: omitted,
        node_signals,
        incidents,
        run,
    }
}

/// The patterns the incidents are built from: the emerging ones, the most significant first,
/// then the patterns of kept incidents that still occur, and those a previous run of the
/// agent had in active incidents (`restored`) that still occur. A pattern stops emerging once
/// its onset leaves the emergence window (a steady outage is no longer "new" after it, nor a
/// surge over a baseline that already holds it); without the second kind an incident was
/// marked ended while its errors went on, and the overview said nothing was happening;
/// without the third, an agent restarted during such an outage raised nothing.
fn diagnosed_patterns(
    views: &Views,
    incidents: &[Incident],
    restored: &mut BTreeMap<String, i64>,
    catching_up: bool,
    now: i64,
) -> Vec<PatternInput> {
    let summaries = views.clusters.summaries();
    let mut emerging: Vec<&web::ClusterSummary> =
        summaries.iter().filter(|s| s.emergence.is_some()).collect();
    emerging.sort_by(|a, b| {
        let score = |s: &web::ClusterSummary| s.emergence.as_ref().map_or(0.0, |e| e.score);
        score(b).total_cmp(&score(a)).then(a.id.cmp(&b.id))
    });
    // A restored pattern an incident holds again is the incident's; one that no longer
    // occurs is over (a later recurrence is a new onset).
    restored.retain(|id, _| {
        !incidents
            .iter()
            .any(|i| i.patterns.iter().any(|p| &p.id == id))
            && (catching_up
                || summaries
                    .iter()
                    .any(|s| &s.id == id && now - s.last_seen_unix_ms <= incident::ACTIVE_MS))
    });
    // A kept incident's pattern keeps the onset it had while emerging; a restored one the
    // onset its incident had.
    let kept: BTreeMap<&str, i64> = restored
        .iter()
        .map(|(id, &onset)| (id.as_str(), onset))
        .chain(
            incidents
                .iter()
                .flat_map(|i| i.patterns.iter())
                .map(|p| (p.id.as_str(), p.onset_unix_ms)),
        )
        .collect();
    let ongoing = summaries.iter().filter(|s| {
        s.emergence.is_none()
            && kept.contains_key(s.id.as_str())
            && now - s.last_seen_unix_ms <= incident::ACTIVE_MS
    });
    emerging
        .into_iter()
        .chain(ongoing)
        .take(MAX_PATTERNS)
        .map(|s| {
            let evidence = views
                .clusters
                .evidence(&s.id, MAX_TRACES_PER_PATTERN)
                .unwrap_or_default();
            let example = evidence.example;
            let run_start = evidence.run_start_unix_ms;
            // The raw message keeps the status code the template masks (`502 Bad Gateway`).
            let status_echo = faultline_clustering::root::reports_http_status(
                example.as_deref().unwrap_or(&s.canonical_template),
            );
            let trace_ids = evidence.trace_ids;
            PatternInput {
                id: s.id.clone(),
                text: s.canonical_template.clone(),
                example,
                services: s.services.clone(),
                // An unresolved verdict (a transport error whose callee is unknown) names
                // only where the error shows: grouping on it could merge two faults.
                culprit: s
                    .culprit
                    .as_ref()
                    .filter(|c| c.resolved)
                    .map(|c| PatternCulprit {
                        service: c.service.clone(),
                        role: c.role,
                        reasoning: c.headline.clone(),
                    }),
                // Never before its current run: the same text after a minute of silence is
                // a new run, whatever an earlier incident or its first occurrence said
                // (see `incident::continues`).
                onset_unix_ms: match &s.emergence {
                    Some(e) => e.since_unix_ms,
                    None => kept
                        .get(s.id.as_str())
                        .copied()
                        .unwrap_or(s.first_seen_unix_ms),
                }
                .max(run_start.unwrap_or(i64::MIN)),
                last_seen_unix_ms: s.last_seen_unix_ms,
                count: s.total_count,
                untraced: s.untraced_count,
                trace_ids,
                failed_before: s
                    .failed_before
                    .iter()
                    .map(|f| (f.pattern_id.clone(), f.count))
                    .collect(),
                status_echo,
            }
        })
        .collect()
}

/// Span attributes that name the port a server listens on (on its SERVER span) or the port
/// a client called (on its CLIENT span), old and new OpenTelemetry conventions.
const SERVER_PORT_KEYS: [&str; 3] = ["server.port", "net.host.port", "url.port"];
const PEER_PORT_KEYS: [&str; 3] = ["server.port", "net.peer.port", "url.port"];

/// What is known about each service: who calls whom and who listens where (from recent call
/// chains), its processes and goroutine pages.
fn service_facts(
    views: &Views,
    counters: &CountersSnapshot,
    patterns: &[PatternInput],
    configured: &ConfiguredFacts,
    known: &mut KnownCalls,
    now: i64,
) -> Vec<ServiceFacts> {
    let mut facts: BTreeMap<String, ServiceFacts> = BTreeMap::new();
    let entry = |name: &str| -> ServiceFacts {
        ServiceFacts {
            service: name.to_owned(),
            ..ServiceFacts::default()
        }
    };
    for p in patterns {
        for s in &p.services {
            facts.entry(s.clone()).or_insert_with(|| entry(s));
        }
    }
    let SeenCalls {
        edges,
        mut ports,
        called,
    } = recent_calls(views, configured.traces.as_ref().map(|t| &*t.0));
    // The calls seen before are still the services' calls: a failing caller makes none.
    known.note(&edges, &called, now);
    let edges: BTreeSet<(String, String)> = known.edges.keys().cloned().collect();
    let called: BTreeSet<(String, u16)> = known.ports.keys().cloned().collect();
    for (service, port) in &called {
        let f = facts
            .entry(service.clone())
            .or_insert_with(|| entry(service));
        if !f.called_ports.contains(port) {
            f.called_ports.push(*port);
        }
    }
    for (name, port) in &configured.listen_ports {
        ports.insert((name.clone(), *port));
    }
    for (caller, callee) in &edges {
        facts
            .entry(caller.clone())
            .or_insert_with(|| entry(caller))
            .callees
            .push(callee.clone());
        facts
            .entry(callee.clone())
            .or_insert_with(|| entry(callee))
            .callers
            .push(caller.clone());
    }
    // A port known only by the process holding its socket is not a service's: the node's
    // other processes (their churn is noise) stay without a culprit.
    if let Some(node) = &configured.listeners {
        for (port, service, source) in node.read().iter() {
            if source != ListenerSource::Socket {
                ports.insert((service.to_owned(), port));
            }
        }
    }
    for (service, port) in &ports {
        let f = facts
            .entry(service.clone())
            .or_insert_with(|| entry(service));
        if !f.listen_ports.contains(port) {
            f.listen_ports.push(*port);
        }
    }
    for p in &counters.processes {
        // A watched process that opens connections to the node's listeners is a caller
        // even when it sends no spans (its sockets say so): it is known as a service.
        let opens = p.outgoing.iter().any(|c| c.distinct_1m > 0);
        let f = match facts.get_mut(&p.name) {
            Some(f) => f,
            None if opens => facts
                .entry(p.name.clone())
                .or_insert_with(|| entry(&p.name)),
            None => continue,
        };
        f.processes.push(p.name.clone());
        if p.pid != 0 {
            f.pid = Some(p.pid);
        }
        if let Some(at) = p.outgoing_counted_at_unix_ms {
            f.connections_to = p
                .outgoing
                .iter()
                .map(|c| ConnectionsTo {
                    port: c.port,
                    held: c.held,
                    new: c.new,
                    closed_1m: c.closed_1m,
                    short_lived_1m: c.short_lived_1m,
                    distinct_1m: c.distinct_1m,
                    reads_1m: p.outgoing_reads_1m,
                    unplaced_short_lived_1m: p.outgoing_unplaced_short_lived_1m,
                    elsewhere_short_lived_1m: p.outgoing_elsewhere_short_lived_1m,
                    local_ports: c.local_ports.clone(),
                    counted_at_unix_ms: at,
                })
                .collect();
        }
    }
    for t in &counters.tasks {
        if let Some(f) = facts.get_mut(&t.target) {
            f.task_targets.push(t.target.clone());
        }
    }
    for (name, url) in &configured.goroutine_urls {
        if let Some(f) = facts.get_mut(name) {
            f.goroutine_url = Some(url.clone());
            f.top_stack = configured.stacks.get(name);
        }
    }
    facts.into_values().collect()
}

/// The calls in the [`MAX_CHAINS`] most recent call chains, read from the trace store when
/// there is one (its spans, without their logs or a built chain: 2.1 % of the agent's CPU at
/// 1,000 lines/s + 1,000 spans/s went to building and rendering the chains), else from the
/// views' chains. Both say the same (see the test
/// `the_calls_read_from_the_store_are_those_of_the_chains`).
fn recent_calls(views: &Views, traces: Option<&TraceStore>) -> SeenCalls {
    let mut seen = SeenCalls::default();
    match traces {
        // The store's spans without their logs or a built chain: the same calls, read at
        // every pass for a fraction of the cost.
        Some(traces) => {
            for spans in traces.recent_spans(MAX_CHAINS) {
                let hops: Vec<Hop<SpanId>> = spans
                    .iter()
                    .map(|s| Hop {
                        id: s.span_id,
                        parent: s.parent_span_id.filter(|p| *p != s.span_id),
                        service: &s.service,
                        kind: match s.kind {
                            SpanKind::Server => HopKind::Server,
                            SpanKind::Client => HopKind::Client,
                            _ => HopKind::Other,
                        },
                        server_port: port_attribute(
                            s.attributes.iter().map(|(k, v)| (k, v)),
                            &SERVER_PORT_KEYS,
                        ),
                        peer_port: port_attribute(
                            s.attributes.iter().map(|(k, v)| (k, v)),
                            &PEER_PORT_KEYS,
                        ),
                    })
                    .collect();
                seen.note(&hops);
            }
        }
        None => {
            for chain in views.traces.recent_chains(MAX_CHAINS) {
                let hops: Vec<Hop<&str>> = chain
                    .spans
                    .iter()
                    .map(|s| {
                        let attributes = s.attributes.iter().map(|a| (&a.key, &a.value));
                        Hop {
                            id: s.span_id.as_str(),
                            parent: s.parent_span_id.as_deref(),
                            service: &s.service,
                            kind: match s.kind.as_str() {
                                "server" => HopKind::Server,
                                "client" => HopKind::Client,
                                _ => HopKind::Other,
                            },
                            server_port: port_attribute(attributes.clone(), &SERVER_PORT_KEYS),
                            peer_port: port_attribute(attributes, &PEER_PORT_KEYS),
                        }
                    })
                    .collect();
                seen.note(&hops);
            }
        }
    }
    seen
}

/// One span of a recent call chain, as far as who calls whom and on which port goes; `K`
/// is how its chain names spans.
struct Hop<'a, K> {
    id: K,
    /// Its parent span, `None` for a root (and for a span that names itself).
    parent: Option<K>,
    service: &'a str,
    kind: HopKind,
    /// The port its attributes say it serves on (meaningful on a server span).
    server_port: Option<u16>,
    /// The port its attributes say it called (meaningful on a client span).
    peer_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HopKind {
    Server,
    Client,
    Other,
}

/// The calls read from recent chains: caller → callee, service → port it listens on,
/// service → port it called.
#[derive(Debug, Default)]
struct SeenCalls {
    edges: BTreeSet<(String, String)>,
    ports: BTreeSet<(String, u16)>,
    called: BTreeSet<(String, u16)>,
}

impl SeenCalls {
    /// Notes the calls of one chain's spans.
    fn note<K: Ord>(&mut self, spans: &[Hop<'_, K>]) {
        let by_id: BTreeMap<&K, &Hop<'_, K>> = spans.iter().map(|s| (&s.id, s)).collect();
        for span in spans {
            if span.kind == HopKind::Server {
                if let Some(p) = span.server_port {
                    self.ports.insert((span.service.to_owned(), p));
                }
            }
            if span.kind == HopKind::Client {
                if let Some(p) = span.peer_port {
                    self.called.insert((span.service.to_owned(), p));
                }
            }
            let Some(parent) = span.parent.as_ref().and_then(|p| by_id.get(p)) else {
                continue;
            };
            if parent.service != span.service {
                self.edges
                    .insert((parent.service.to_owned(), span.service.to_owned()));
                // The caller's client span names the port the callee listens on.
                if parent.kind == HopKind::Client && span.kind == HopKind::Server {
                    if let Some(p) = parent.peer_port {
                        self.ports.insert((span.service.to_owned(), p));
                    }
                }
            }
        }
    }
}

/// The first of `keys` among `attributes` (key, value) whose value reads as a port.
fn port_attribute<'a, S: AsRef<str> + 'a>(
    attributes: impl Iterator<Item = (&'a S, &'a S)> + Clone,
    keys: &[&str],
) -> Option<u16> {
    keys.iter().find_map(|k| {
        attributes
            .clone()
            .find(|(key, _)| key.as_ref() == *k)
            .and_then(|(_, value)| value.as_ref().trim().parse().ok())
    })
}

fn side(s: web::PortSide) -> PortSide {
    match s {
        web::PortSide::Local => PortSide::Local,
        web::PortSide::Remote => PortSide::Remote,
    }
}

fn state(s: web::SocketState) -> SocketState {
    match s {
        web::SocketState::Established => SocketState::Established,
        web::SocketState::SynSent => SocketState::SynSent,
        web::SocketState::SynRecv => SocketState::SynRecv,
        web::SocketState::FinWait1 => SocketState::FinWait1,
        web::SocketState::FinWait2 => SocketState::FinWait2,
        web::SocketState::TimeWait => SocketState::TimeWait,
        web::SocketState::Close => SocketState::Close,
        web::SocketState::CloseWait => SocketState::CloseWait,
        web::SocketState::LastAck => SocketState::LastAck,
        web::SocketState::Listen => SocketState::Listen,
        web::SocketState::Closing => SocketState::Closing,
    }
}

/// The counters' per-second history as typed series, with the limits of those that have one
/// (fd limits, listen backlogs). Port totals are the sums of their states, so a state's series
/// that starts later can be read as 0 where its port group was counted. The points are moved
/// out of `s` (its series are left empty; its current values stay), not copied.
pub fn counter_history(s: &mut CountersSnapshot) -> (CounterHistory, Vec<SeriesLimit>) {
    let mut series: Vec<CounterSeries> = Vec::new();
    let mut limits = Vec::new();
    let mut totals: BTreeMap<(u16, PortSide), Vec<Option<f64>>> = BTreeMap::new();
    for x in &mut s.sockets {
        let (port, side) = (x.port, side(x.side));
        let total = totals.entry((port, side)).or_default();
        if total.len() < x.history.points.len() {
            total.resize(x.history.points.len(), None);
        }
        for (t, p) in total.iter_mut().zip(&x.history.points) {
            if let Some(v) = p {
                *t = Some(t.unwrap_or(0.0) + v);
            }
        }
        series.push(CounterSeries {
            key: SeriesKey::PortState {
                port,
                side,
                state: state(x.state),
            },
            points: std::mem::take(&mut x.history.points),
        });
    }
    for ((port, side), points) in totals {
        series.push(CounterSeries {
            key: SeriesKey::PortTotal { port, side },
            points,
        });
    }
    if let Some(t) = &mut s.socket_totals {
        for st in &mut t.by_state {
            series.push(CounterSeries {
                key: SeriesKey::NodeState {
                    state: state(st.state),
                },
                points: std::mem::take(&mut st.history.points),
            });
        }
        series.push(CounterSeries {
            key: SeriesKey::OtherPortsTotal,
            points: std::mem::take(&mut t.other_ports.history.points),
        });
        // When each point's socket counts were taken (see `CounterHistory::counted_at`).
        series.push(CounterSeries {
            key: SeriesKey::Runtime {
                metric: RuntimeMetric::SocketCensusAge,
            },
            points: std::mem::take(&mut t.census_age_ms.points),
        });
    }
    let mut queue_ports = BTreeSet::new();
    for l in &mut s.listeners {
        // Listeners sharing a port share one history.
        if queue_ports.insert(l.port) {
            let key = SeriesKey::ListenQueue { port: l.port };
            if let Some(b) = l.backlog.filter(|b| *b > 0) {
                limits.push(SeriesLimit {
                    key: key.clone(),
                    limit: b as f64,
                });
            }
            series.push(CounterSeries {
                key,
                points: std::mem::take(&mut l.history.points),
            });
        }
    }
    for x in &mut s.sockstat {
        series.push(CounterSeries {
            key: SeriesKey::Sockstat {
                key: x.name.clone(),
            },
            points: std::mem::take(&mut x.history.points),
        });
    }
    for x in &mut s.protocol_rates {
        series.push(CounterSeries {
            key: SeriesKey::ProtocolRate {
                key: x.name.clone(),
            },
            points: std::mem::take(&mut x.history.points),
        });
    }
    for p in &mut s.processes {
        let fds = SeriesKey::Process {
            name: p.name.clone(),
            metric: ProcessMetric::OpenFds,
        };
        if let Some(limit) = p.current.as_ref().and_then(|c| c.fd_limit) {
            limits.push(SeriesLimit {
                key: fds.clone(),
                limit: limit as f64,
            });
        }
        series.push(CounterSeries {
            key: fds,
            points: std::mem::take(&mut p.fds.points),
        });
        series.push(CounterSeries {
            key: SeriesKey::Process {
                name: p.name.clone(),
                metric: ProcessMetric::Threads,
            },
            points: std::mem::take(&mut p.threads.points),
        });
    }
    for t in &mut s.tasks {
        series.push(CounterSeries {
            key: SeriesKey::Task {
                target: t.target.clone(),
                source: t.source.clone(),
            },
            points: std::mem::take(&mut t.history.points),
        });
    }
    (
        CounterHistory {
            start_unix_ms: s.history_start_unix_ms,
            step_ms: s.step_ms.max(1),
            series,
            ..CounterHistory::default()
        },
        limits,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The diagnosis reads who calls whom and on which ports from the store's spans (no logs,
    /// no built chain) at every pass: the same calls as the chains the web shows, with a
    /// trace's logs, an orphan, an internal span and a span naming itself beside them.
    #[test]
    fn the_calls_read_from_the_store_are_those_of_the_chains() {
        use faultline_ingest::traces::{Span, StatusCode, TraceStoreConfig};
        use faultline_ingest::{LogRecord, Origin, TraceId};
        let store = Arc::new(TraceStore::new(TraceStoreConfig::default()));
        let span = |trace: u8, id: u8, parent: Option<u8>, service: &str, kind, port: &str| Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.into(),
            name: "call".into(),
            kind,
            start_unix_nanos: 1_000 + i64::from(id),
            end_unix_nanos: 2_000,
            status: StatusCode::Unset,
            status_message: String::new(),
            attributes: if port.is_empty() {
                Vec::new()
            } else {
                vec![
                    ("http.route".into(), "/x".into()),
                    (
                        port.split('=').next().unwrap_or_default().into(),
                        port.split('=').nth(1).unwrap_or_default().into(),
                    ),
                ]
            },
            events: Vec::new(),
        };
        store.insert_spans(vec![
            span(1, 1, None, "gateway", SpanKind::Server, "server.port=8080"),
            span(
                1,
                2,
                Some(1),
                "gateway",
                SpanKind::Client,
                "server.port=7001",
            ),
            span(1, 3, Some(2), "users", SpanKind::Server, ""),
            span(1, 4, Some(3), "users", SpanKind::Internal, ""),
            span(1, 5, Some(4), "db", SpanKind::Server, "net.host.port=5432"),
            span(2, 1, Some(9), "orders", SpanKind::Server, "url.port= 7002 "),
            span(
                2,
                2,
                Some(1),
                "orders",
                SpanKind::Client,
                "net.peer.port=7003",
            ),
            span(2, 3, Some(2), "stock", SpanKind::Server, ""),
            span(2, 4, Some(4), "cache", SpanKind::Server, "server.port=6379"),
        ]);
        store.attach_logs(vec![LogRecord {
            time_unix_nanos: Some(1_500),
            observed_unix_nanos: 1_500,
            level: faultline_ingest::Level::Error,
            service: Some("users".into()),
            message: "query failed".into(),
            error: None,
            http_status: None,
            trace_id: Some(TraceId([1; 16])),
            span_id: Some(SpanId([3; 8])),
            attributes: Vec::new(),
            origin: Origin::OtlpLog,
            truncated: false,
        }]);
        let views = crate::views::build_with_clock(
            Arc::new(faultline_clustering::Engine::new(Default::default())),
            Arc::clone(&store),
            Arc::new(CounterStore::new(&Default::default())),
            faultline_web::LiveUpdates::new(),
            Arc::new(Vec::new),
            Arc::new(|| 0),
        );
        let from_store = recent_calls(&views, Some(&store));
        let from_chains = recent_calls(&views, None);
        let pairs = |v: &[(&str, &str)]| -> BTreeSet<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let ports = |v: &[(&str, u16)]| -> BTreeSet<(String, u16)> {
            v.iter().map(|(a, p)| (a.to_string(), *p)).collect()
        };
        assert_eq!(
            from_store.edges,
            pairs(&[("gateway", "users"), ("users", "db"), ("orders", "stock")])
        );
        assert_eq!(
            from_store.ports,
            ports(&[
                ("gateway", 8080),
                ("users", 7001),
                ("db", 5432),
                ("orders", 7002),
                ("stock", 7003),
                ("cache", 6379),
            ])
        );
        assert_eq!(
            from_store.called,
            ports(&[("gateway", 7001), ("orders", 7003)])
        );
        assert_eq!(from_store.edges, from_chains.edges);
        assert_eq!(from_store.ports, from_chains.ports);
        assert_eq!(from_store.called, from_chains.called);
    }

    /// A pass at a random phase of the sampler's second read samples up to a second old (seen
    /// on the unseen lab: 1.1 s); with the counters sampled at its own pace, a pass follows
    /// each sample, and still runs when the sampler stalls.
    #[tokio::test]
    async fn a_pass_follows_each_node_sample_and_runs_without_one() {
        use faultline_ingest::counters::reader::CensusReading;
        use faultline_ingest::counters::store::NodeSample;
        use faultline_ingest::counters::{CounterError, CountersConfig};
        let store = Arc::new(CounterStore::new(&CountersConfig::default()));
        let interval = Duration::from_secs(1);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let sampler = Arc::clone(&store);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sampler.record_sample(NodeSample {
                time_unix_ms: now_unix_ms(),
                sockets: CensusReading::of(Err(CounterError::Worker("none".into()))),
                sockstat: Ok(BTreeMap::new()),
                protocol: Ok(BTreeMap::new()),
                processes: Vec::new(),
                agent_process: None,
                runtime: None,
                scrapes: Vec::new(),
            });
        });
        let began = std::time::Instant::now();
        pass_due(Some(&store), &mut tick, interval).await;
        let waited = began.elapsed();
        assert!(waited < Duration::from_millis(600), "{waited:?}");

        // No sample: an interval and a half.
        let short = Duration::from_millis(200);
        let began = std::time::Instant::now();
        pass_due(Some(&store), &mut tick, short).await;
        assert!(began.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn goroutine_dump_urls_ask_pprof_for_every_stack() {
        assert_eq!(
            stack_dump_url("http://127.0.0.1:6060/debug/pprof/goroutine?debug=1").as_deref(),
            Some("http://127.0.0.1:6060/debug/pprof/goroutine?debug=2")
        );
        assert_eq!(
            stack_dump_url("http://127.0.0.1:6060/debug/vars").as_deref(),
            Some("http://127.0.0.1:6060/debug/pprof/goroutine?debug=2")
        );
        assert_eq!(stack_dump_url("not a url"), None);
    }

    #[test]
    fn calls_are_remembered_after_they_stop_and_forgotten_after_the_memory() {
        let mut known = KnownCalls::default();
        let edges = BTreeSet::from([("api".to_owned(), "orders".to_owned())]);
        let ports = BTreeSet::from([("api".to_owned(), 8080u16)]);
        known.note(&edges, &ports, 1_000);
        // The caller's lookups fail: no call in the recent chains, the call is still known.
        known.note(&BTreeSet::new(), &BTreeSet::new(), 61_000);
        assert!(known.edges.contains_key(&("api".into(), "orders".into())));
        assert!(known.ports.contains_key(&("api".into(), 8080)));
        known.note(
            &BTreeSet::new(),
            &BTreeSet::new(),
            1_000 + CALL_MEMORY_MS + 1,
        );
        assert!(known.edges.is_empty() && known.ports.is_empty());
        // Bounded: the least recently seen leave first.
        for i in 0..(MAX_KNOWN_CALLS + 3) {
            let edge = BTreeSet::from([(format!("s{i}"), "x".to_owned())]);
            known.note(&edge, &BTreeSet::new(), 2_000_000 + i as i64);
        }
        assert_eq!(known.edges.len(), MAX_KNOWN_CALLS);
        assert!(!known.edges.contains_key(&("s0".into(), "x".into())));
    }

    #[test]
    fn a_new_process_id_is_a_restart_from_its_first_point_with_the_old_ones_stop_kept() {
        // The old process (id 100) runs until 4 s, the target is not found from 5 s (the
        // redeploy takes 35 s), the new process (id 200) is read from 40 s; the diagnosis
        // first notes it at 43.5 s (runs fall behind on a loaded node).
        let process = |pid, points: Vec<Option<f64>>| web::ProcessSeries {
            pid,
            name: "edge".into(),
            fds: web::Series {
                points,
                delta_1m: None,
            },
            threads: web::Series::default(),
            rss_bytes: web::Series::default(),
            current: None,
            error: None,
            outgoing: Vec::new(),
            outgoing_counted_at_unix_ms: None,
            outgoing_reads_1m: 0,
            outgoing_unplaced_short_lived_1m: 0,
            outgoing_elsewhere_short_lived_1m: 0,
        };
        // The snapshot of a run at `now`: a point a second from 0, the process `pid` now,
        // read at the seconds `read` says.
        let at = |pid, now: i64, read: &dyn Fn(i64) -> bool| CountersSnapshot {
            history_start_unix_ms: 0,
            step_ms: 1_000,
            sampled_at_unix_ms: now / 1_000 * 1_000,
            processes: vec![process(
                pid,
                (0..=now / 1_000)
                    .map(|s| read(s * 1_000).then_some(10.0))
                    .collect(),
            )],
            ..CountersSnapshot::default()
        };
        let old = |t: i64| t <= 4_000;
        let redeployed = |t: i64| t <= 4_000 || t >= 40_000;
        let mut kept = Kept::default();
        kept.note_pids(&at(100, 1_000, &old), 1_000);
        kept.note_pids(&at(100, 2_000, &old), 2_000);
        // Not found for a moment, then the same process: no restart.
        kept.note_pids(&at(0, 3_000, &|t| t <= 2_000), 3_000);
        kept.note_pids(&at(100, 4_000, &old), 4_000);
        assert!(kept.starts(&[]).is_empty());
        kept.note_pids(&at(0, 5_000, &old), 5_000);
        kept.note_pids(&at(0, 39_000, &old), 39_000);
        kept.note_pids(&at(200, 43_500, &redeployed), 43_500);
        let services = [
            ServiceFacts {
                service: "edge-svc".into(),
                listen_ports: vec![8080],
                task_targets: vec!["edge".into()],
                processes: vec!["edge".into()],
                callees: vec!["orders".into()],
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "orders".into(),
                callers: vec!["edge-svc".into()],
                callees: vec!["ledger".into()],
                ..ServiceFacts::default()
            },
        ];
        // Started at the new process's first point, stopped after the old one's last run.
        let edge = |at_unix_ms, stopped| ServiceStart {
            service: "edge-svc".into(),
            at_unix_ms,
            stopped_unix_ms: Some(stopped),
            ports: vec![8080],
            task_targets: vec!["edge".into()],
            processes: vec!["edge".into()],
        };
        // The services below it: their traffic comes through it (their request rates
        // restart with it, nothing else of theirs).
        let below = |service: &str, at_unix_ms, stopped| ServiceStart {
            service: service.into(),
            at_unix_ms,
            stopped_unix_ms: Some(stopped),
            ..ServiceStart::default()
        };
        assert_eq!(
            kept.starts(&services),
            vec![
                edge(40_000, 4_001),
                below("orders", 40_000, 4_001),
                below("ledger", 40_000, 4_001),
            ]
        );

        // Replaced between two runs, with no sample missed: its points run on from the old
        // process's, and the restart is dated after the old one was last seen.
        kept.note_pids(&at(200, 44_000, &redeployed), 44_000);
        kept.note_pids(&at(300, 45_000, &redeployed), 45_000);
        assert_eq!(kept.starts(&services)[0], edge(44_001, 44_001));
    }

    #[test]
    fn port_totals_sum_their_states_and_keep_gaps_unknown() {
        let socket = |state, points: Vec<Option<f64>>| {
            web::SocketSeries::new(
                8080,
                web::PortSide::Local,
                state,
                0,
                web::Series {
                    points,
                    delta_1m: None,
                },
            )
        };
        let mut snapshot = CountersSnapshot {
            history_start_unix_ms: 1_000,
            step_ms: 1_000,
            sockets: vec![
                socket(
                    web::SocketState::Established,
                    vec![None, Some(3.0), Some(4.0)],
                ),
                socket(web::SocketState::TimeWait, vec![None, None, Some(10.0)]),
            ],
            ..CountersSnapshot::default()
        };
        let (history, _) = counter_history(&mut snapshot);
        let total = history
            .get(&SeriesKey::PortTotal {
                port: 8080,
                side: PortSide::Local,
            })
            .unwrap();
        assert_eq!(total.points, vec![None, Some(3.0), Some(14.0)]);
    }
}
