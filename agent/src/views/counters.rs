//! [`CounterView`] over the counter store: the store's snapshot in the web model's shape, on
//! one regular time axis ([`super::axis`]).

use super::axis::{regular_axis, Axis, Columns};
use super::counter;
use super::kept::KeptHistory;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use faultline_ingest::counters::proc_net::{PROTOCOL_COUNTERS, SOCKSTAT_KEYS};
use faultline_ingest::counters::sockets::SocketSource as StoreSocketSource;
use faultline_ingest::counters::store::CountersSnapshot as StoreSnapshot;
use faultline_ingest::counters::{CounterStore, SnapshotOptions, SourceState as StoreSourceState};
use faultline_ingest::traces::TraceStore;
use faultline_series::{ProcessMetric, RuntimeMetric, SeriesKey, TrafficMetric};
use faultline_web::model::{
    CountSeries, CounterView, CountersSnapshot, HistoryResolution, ListenQueue, NamedSeries,
    OtherPorts, OutgoingPort, ProcessNow, ProcessSeries, RuntimeSeries, Series, ServiceTraffic,
    SocketSeries, SocketSource, SocketState, SocketTotals, SourceState, SourceStatus, StateCount,
    StateSeries, StoreCounter, TaskSeries,
};

/// [`CounterView`] over the counter store, with the services' traffic from the trace store.
pub(super) struct CounterAdapter {
    store: Arc<CounterStore>,
    traces: Arc<TraceStore>,
    /// The last encoded page at each resolution (per sample, then per minute), with the
    /// store's revision it was read at. Each one's lock is held while it is built, so readers
    /// that come meanwhile wait for it rather than build it again.
    encoded: [Mutex<Option<Encoded>>; 2],
}

/// An encoded counters document and the store revision it was read at.
type Encoded = (u64, Arc<[u8]>);

impl CounterAdapter {
    /// The counters view over `store`, with the services' traffic from `traces`.
    pub(super) fn new(store: Arc<CounterStore>, traces: Arc<TraceStore>) -> CounterAdapter {
        CounterAdapter {
            store,
            traces,
            encoded: Default::default(),
        }
    }
}

impl CounterView for CounterAdapter {
    /// The per-minute ring is copied only when asked for: the diagnosis reads the per-sample
    /// history once a second, and a day of minutes of every series is as long again.
    fn snapshot_at_resolution(&self, resolution: HistoryResolution) -> CountersSnapshot {
        counters_snapshot(&self.store.snapshot(&options(resolution)), resolution)
    }

    /// The snapshot with the services' traffic laid on its axis (per second only: traffic
    /// is kept 15 minutes per second).
    fn page(&self, resolution: HistoryResolution) -> CountersSnapshot {
        let store = self.store.snapshot(&options(resolution));
        let mut snapshot = counters_snapshot(&store, resolution);
        if resolution == HistoryResolution::Second {
            snapshot.traffic = service_traffic(&self.traces, &store);
        }
        snapshot
    }

    /// Encoded once per revision of the store: every open dashboard page reads the whole
    /// document at each sample, and on a busy node charting every port that is 3 MB and
    /// ~30 ms of CPU in a release build (~450 ms in a debug one) per reader (BENCHMARKS.md).
    /// The services' traffic in it is read with the first read after each sample: spans that
    /// arrive later show at the next one.
    fn page_json(&self, resolution: HistoryResolution) -> Result<Arc<[u8]>, serde_json::Error> {
        let slot = match resolution {
            HistoryResolution::Second => &self.encoded[0],
            HistoryResolution::Minute => &self.encoded[1],
        };
        let mut kept = slot.lock().unwrap_or_else(PoisonError::into_inner);
        // Read before the snapshot: a sample recorded meanwhile changes it, and the next read
        // builds the document again.
        let revision = self.store.revision();
        if let Some((at, bytes)) = kept.as_ref() {
            if *at == revision {
                return Ok(Arc::clone(bytes));
            }
        }
        let bytes: Arc<[u8]> = serde_json::to_vec(&self.page(resolution))?.into();
        *kept = Some((revision, Arc::clone(&bytes)));
        Ok(bytes)
    }

    /// One point per series instead of the rings: enough for the store to list the same series
    /// (a port state that had sockets within the window stays listed, at 0) without copying
    /// 15 minutes of every series at each `/metrics` scrape.
    fn current(&self) -> CountersSnapshot {
        let latest = SnapshotOptions {
            max_points: 1,
            minutes: false,
            ..SnapshotOptions::default()
        };
        let store = self.store.snapshot(&latest);
        let mut current = counters_snapshot(&store, HistoryResolution::Second);
        // A departed port group is listed by its history, which this read leaves out: list
        // its states at 0 as the full snapshot does (the store names the states that had
        // sockets within its history).
        for group in &store.departed_ports {
            for &state in &group.states {
                let (port, side) = (group.port, group.side);
                let listed = current
                    .sockets
                    .iter()
                    .any(|s| s.port == port && s.side == side && s.state == state);
                if !listed {
                    let none = Series::default();
                    current
                        .sockets
                        .push(SocketSeries::new(port, side, state, 0, none));
                }
            }
        }
        current
    }

    /// The store's bounds, so that evicted history and rejected task targets are visible.
    fn store_counters(&self) -> Vec<StoreCounter> {
        let b = self.store.snapshot(&SnapshotOptions::current_only()).bounds;
        vec![
            counter(
                "counter_series",
                "History series kept by the counter store.",
                b.series as f64,
            ),
            counter(
                "counter_series_max",
                "Bound on the counter store's history series.",
                b.max_series as f64,
            ),
            counter(
                "counter_series_evicted_total",
                "History series evicted to stay within the bound (least recently seen first).",
                b.series_evicted as f64,
            ),
            counter(
                "counter_points",
                "Points the counter store's history holds over every series and both \
                 resolutions (4 bytes each; a series holds its points from its first known \
                 one to its last).",
                b.points.0 as f64,
            ),
            counter(
                "counter_points_room",
                "Room the counter store's history rings hold, in points (never past their \
                 caps).",
                b.points.1 as f64,
            ),
            counter(
                "counter_task_targets",
                "Task targets (scraped or pushed over OTLP) kept by the counter store.",
                b.task_targets as f64,
            ),
            counter(
                "counter_task_targets_rejected_total",
                "Task readings rejected because the bound on task targets was reached.",
                b.task_targets_rejected as f64,
            ),
        ]
    }
}

/// How often [`KeptCounters`] reads the store's history again in full, as a check on the
/// points it kept (ms).
pub const FULL_READ_MS: i64 = 60_000;

/// The counter store's per-sample history as a reader that comes back every second keeps it
/// (the diagnosis): under the store's lock, each read copies the points recorded since the
/// last one, not 15 minutes of every series. Measured on the soak (debug, ~170 series, 20
/// minutes of history, load ~20): the counters phase of a pass, three full copies of every
/// series with the first under the lock, was its largest (500–680 ms).
///
/// The kept points are the store's, exactly: a series the store removed since (evicted at its
/// series bound, dropped or forgotten) is left out, and they are read again in full when the
/// store's history changed otherwise (a restore: see
/// [`HistoryBlock::generation`](faultline_ingest::counters::store::HistoryBlock::generation)),
/// when the store no longer knows every removal since, when the new points do not follow the
/// kept ones, and every [`FULL_READ_MS`] as a check.
#[derive(Debug, Default)]
pub struct KeptCounters {
    /// The store's per-sample history as of the last read, sparse (see [`super::kept`]).
    seconds: Option<KeptHistory>,
    /// The store history's generation and newest sample number then.
    generation: u64,
    tick: u64,
    /// When it was last read in full (Unix ms).
    full_read_at: Option<i64>,
    /// Reads so far.
    reads: KeptReads,
}

/// How [`KeptCounters`] read the store so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptReads {
    /// Reads of every point.
    pub full: u64,
    /// Reads of the new points only.
    pub since_last: u64,
}

impl KeptCounters {
    /// The store's snapshot at per-sample resolution, as [`CounterView::snapshot`] gives it
    /// (`now_unix_ms` dates the periodic full read).
    pub fn snapshot(&mut self, store: &CounterStore, now_unix_ms: i64) -> CountersSnapshot {
        let (s, seconds) = self.read(store, now_unix_ms);
        let out = counters_snapshot_on(
            &s,
            HistoryResolution::Second,
            seconds.times_unix_ms(),
            &seconds,
            seconds.times_unix_ms(),
            &seconds,
        );
        self.seconds = Some(seconds);
        out
    }

    /// How the store was read so far.
    pub fn reads(&self) -> KeptReads {
        self.reads
    }

    /// The store's snapshot without its history, and its whole per-sample history: the new
    /// points laid after the kept ones, or everything read again.
    fn read(&mut self, store: &CounterStore, now_unix_ms: i64) -> (StoreSnapshot, KeptHistory) {
        let due = self
            .full_read_at
            .is_none_or(|at| now_unix_ms.abs_diff(at) >= FULL_READ_MS.unsigned_abs());
        if let (Some(mut kept), false) = (self.seconds.take(), due) {
            let mut s = store.snapshot(&SnapshotOptions {
                minutes: false,
                seconds_after: Some(self.tick),
                ..SnapshotOptions::default()
            });
            if let Some(h) = s.history.take().filter(|h| h.generation == self.generation) {
                let tick = h.tick;
                if let Some(removed) = h.removed {
                    if kept.follow(&removed, h.seconds, h.sample_points) {
                        self.tick = tick;
                        self.reads.since_last += 1;
                        return (s, kept);
                    }
                }
            }
        }
        let mut s = store.snapshot(&SnapshotOptions {
            minutes: false,
            seconds_known: true,
            ..SnapshotOptions::default()
        });
        let seconds = match s.history.take() {
            Some(h) => {
                (self.generation, self.tick) = (h.generation, h.tick);
                KeptHistory::read(h.known.unwrap_or_default())
            }
            None => KeptHistory::default(),
        };
        self.full_read_at = Some(now_unix_ms);
        self.reads.full += 1;
        (s, seconds)
    }
}

/// The store read for a snapshot at `resolution`: the per-minute ring only when asked for.
fn options(resolution: HistoryResolution) -> SnapshotOptions {
    SnapshotOptions {
        minutes: resolution == HistoryResolution::Minute,
        ..SnapshotOptions::default()
    }
}

/// Every service's request and error rates as the diagnosis reads them
/// ([`traffic_series`](super::diagnosis::traffic_series) on the same per-sample axis), by
/// service, with their change over the last minute.
fn service_traffic(traces: &TraceStore, s: &StoreSnapshot) -> Vec<ServiceTraffic> {
    let axis = super::diagnosis::store_axis(s);
    let step_ms = axis.step_ms.max(1);
    // The newest point at least a minute before the latest.
    let back = usize::try_from((60_000 + step_ms - 1) / step_ms).unwrap_or(usize::MAX);
    let series = |points: Vec<Option<f64>>| {
        let delta_1m = points
            .len()
            .checked_sub(1 + back)
            .and_then(|then| Some(points.last().copied().flatten()? - points[then]?));
        Series { points, delta_1m }
    };
    let mut by_service: BTreeMap<String, ServiceTraffic> = BTreeMap::new();
    for s in super::diagnosis::traffic_series(traces.traffic(), axis) {
        let SeriesKey::ServiceTraffic { service, metric } = s.key else {
            continue;
        };
        let row = by_service
            .entry(service.clone())
            .or_insert_with(|| ServiceTraffic {
                service,
                ..ServiceTraffic::default()
            });
        match metric {
            TrafficMetric::Requests => row.requests = series(s.points),
            TrafficMetric::Errors => row.errors = series(s.points),
        }
    }
    by_service.into_values().collect()
}

/// The port groups the store keeps after they left its top ports (see
/// [`faultline_ingest::counters::store::DepartedPorts`]), on the axis. Their `current` is 0:
/// sockets they still have are counted in the other ports. A state with no socket on this
/// axis (its peak was outside it) is left out.
fn departed_port_groups(s: &StoreSnapshot, axis: &Axis<'_>) -> Vec<SocketSeries> {
    let mut out = Vec::new();
    for group in &s.departed_ports {
        for &state in &group.states {
            let (port, side) = (group.port, group.side);
            let history = axis.series(&SeriesKey::PortState { port, side, state });
            if history.points.iter().flatten().any(|&v| v > 0.0) {
                out.push(SocketSeries::new(port, side, state, 0, history));
            }
        }
    }
    out
}

fn state_counts(counts: &BTreeMap<SocketState, u32>) -> Vec<StateCount> {
    counts
        .iter()
        .map(|(state, n)| StateCount::new(*state, u64::from(*n)))
        .collect()
}

fn source_state(state: StoreSourceState) -> SourceState {
    match state {
        StoreSourceState::Available => SourceState::Available,
        StoreSourceState::Unavailable => SourceState::Unavailable,
        StoreSourceState::Failing => SourceState::Failing,
    }
}

/// The store's snapshot in the web model's shape, with history from the ring `resolution`
/// names (per sample, or per minute over 24 h) and every series' `delta_1m` from the
/// per-sample ring.
///
/// Sockets: one series per port group and state of the store's top ports (states with sockets
/// now or with history), inbound groups as [`PortSide::Local`](faultline_series::PortSide::Local), outbound as
/// [`PortSide::Remote`](faultline_series::PortSide::Remote), then the groups that left the top ports during the window (see
/// [`departed_port_groups`]); the node-wide counts by state (every state) and the summed other
/// ports go to `socket_totals`, the accept queues of the store's top listeners to
/// `listeners`. Nothing about sockets is shown while the socket source fails (the store then
/// has no current counts; `sources` says why). Processes: `pid` is the first process of the
/// target (the store sums a target's processes), 0 when the target could not be read.
/// Tasks: one series per target, `target (source)` when several sources report one target.
/// The agent's runtime goes to `runtime`. Left out: the store's per-sample deltas (the model
/// has the change over a minute instead), protocol counters' running totals and its own
/// bounds (series and task targets kept).
fn counters_snapshot(s: &StoreSnapshot, resolution: HistoryResolution) -> CountersSnapshot {
    let empty = BTreeMap::new();
    let (per_sample_times, per_sample) = match &s.history {
        Some(h) => (h.seconds.times_unix_ms.as_slice(), &h.seconds.series),
        None => (&[][..], &empty),
    };
    let (times, series) = match (resolution, &s.history) {
        (HistoryResolution::Minute, Some(h)) => {
            (h.minutes.times_unix_ms.as_slice(), &h.minutes.series)
        }
        (HistoryResolution::Minute, None) => (&[][..], &empty),
        (HistoryResolution::Second, _) => (per_sample_times, per_sample),
    };
    counters_snapshot_on(s, resolution, times, series, per_sample_times, per_sample)
}

/// [`counters_snapshot`] with the history given apart from the store's snapshot: `times` and
/// `series` at `resolution`, `per_sample_times` and `per_sample` for the deltas (the same at
/// per-sample resolution).
fn counters_snapshot_on(
    s: &StoreSnapshot,
    resolution: HistoryResolution,
    times: &[i64],
    series: &dyn Columns,
    per_sample_times: &[i64],
    per_sample: &dyn Columns,
) -> CountersSnapshot {
    let step_ms = match resolution {
        HistoryResolution::Minute => 60_000,
        HistoryResolution::Second => i64::try_from(s.interval_ms).unwrap_or(i64::MAX).max(1),
    };
    let (history_start_unix_ms, samples) = regular_axis(times, step_ms);
    let axis = Axis::new(samples, series, per_sample, per_sample_times);

    let mut sockets = Vec::new();
    let mut socket_totals = None;
    let mut listeners = Vec::new();
    let mut listeners_omitted = 0;
    if let Some(view) = &s.sockets {
        for port in &view.ports {
            let side = port.side;
            for state in SocketState::ALL {
                let key = SeriesKey::PortState {
                    port: port.port,
                    side,
                    state,
                };
                let current = port.states.get(&state).copied().unwrap_or(0);
                if current == 0 && !axis.has(&key) {
                    continue;
                }
                sockets.push(SocketSeries::new(
                    port.port,
                    side,
                    state,
                    u64::from(current),
                    axis.series(&key),
                ));
            }
        }
        sockets.extend(departed_port_groups(s, &axis));
        socket_totals = Some(SocketTotals {
            source: match view.source {
                StoreSocketSource::Netlink => SocketSource::Netlink,
                StoreSocketSource::ProcNet => SocketSource::Proc,
            },
            total: view.total,
            by_state: view
                .by_state
                .iter()
                .map(|c| {
                    let history = axis.series(&SeriesKey::NodeState { state: c.state });
                    StateSeries::new(c.state, u64::from(c.count), history)
                })
                .collect(),
            ipv4: state_counts(&view.ipv4),
            ipv6: state_counts(&view.ipv6),
            other_ports: OtherPorts {
                port_groups: view.other.port_groups as u64,
                total: view.other.total,
                by_state: state_counts(&view.other.states),
                history: axis.series(&SeriesKey::OtherPortsTotal),
            },
            census_age_ms: axis.series(&SeriesKey::Runtime {
                metric: RuntimeMetric::SocketCensusAge,
            }),
        });
        listeners = view
            .listeners
            .iter()
            .map(|l| ListenQueue {
                address: l.local.ip().to_string(),
                port: l.local.port(),
                queue: u64::from(l.queue),
                backlog: l.backlog.map(u64::from),
                fill: l
                    .backlog
                    .filter(|&b| b > 0)
                    .map(|b| f64::from(l.queue) / f64::from(b)),
                history: axis.series(&SeriesKey::ListenQueue {
                    port: l.local.port(),
                }),
            })
            .collect();
        listeners_omitted = view.listeners_omitted as u64;
    }

    let sockstat = SOCKSTAT_KEYS
        .iter()
        .filter_map(|key| {
            let series = SeriesKey::Sockstat {
                key: (*key).to_owned(),
            };
            let current = s.sockstat.get(*key).map(|&v| v as f64);
            (current.is_some() || axis.has(&series)).then(|| NamedSeries {
                name: (*key).to_owned(),
                unit: series.unit().to_owned(),
                current,
                history: axis.series(&series),
                total: None,
            })
        })
        .collect();

    let protocol_rates = PROTOCOL_COUNTERS
        .iter()
        .filter_map(|key| {
            let series = SeriesKey::ProtocolRate {
                key: (*key).to_owned(),
            };
            let current = s.protocol.iter().find(|p| p.name == *key);
            (current.is_some() || axis.has(&series)).then(|| NamedSeries {
                name: (*key).to_owned(),
                unit: series.unit().to_owned(),
                current: current.and_then(|p| p.rate_per_sec),
                history: axis.series(&series),
                total: current.map(|p| p.total),
            })
        })
        .collect();

    let processes = s
        .processes
        .iter()
        .map(|p| {
            let process = |metric| {
                axis.series(&SeriesKey::Process {
                    name: p.name.clone(),
                    metric,
                })
            };
            ProcessSeries {
                pid: p
                    .counters
                    .as_ref()
                    .and_then(|c| c.pids.first().copied())
                    .unwrap_or(0),
                name: p.name.clone(),
                fds: process(ProcessMetric::OpenFds),
                threads: process(ProcessMetric::Threads),
                rss_bytes: process(ProcessMetric::RssBytes),
                current: p.counters.as_ref().map(|c| ProcessNow {
                    open_fds: c.open_fds,
                    fd_limit: c.fd_limit,
                    threads: c.threads,
                    rss_bytes: c.rss_bytes,
                }),
                error: p.error.clone(),
                outgoing: p.outgoing.as_ref().map_or_else(Vec::new, |o| {
                    o.ports
                        .iter()
                        .map(|c| OutgoingPort {
                            port: c.port,
                            held: c.held,
                            new: c.new,
                            closed_1m: c.closed_1m,
                            short_lived_1m: c.short_lived_1m,
                            distinct_1m: c.distinct_1m,
                            distinct_capped: c.distinct_capped,
                            local_ports: c.local_ports.clone(),
                        })
                        .collect()
                }),
                outgoing_counted_at_unix_ms: p.outgoing.as_ref().map(|o| o.counted_unix_ms),
                outgoing_reads_1m: p.outgoing.as_ref().map_or(0, |o| o.reads_1m),
                outgoing_unplaced_short_lived_1m: p
                    .outgoing
                    .as_ref()
                    .map_or(0, |o| o.unplaced_short_lived_1m),
                outgoing_elsewhere_short_lived_1m: p
                    .outgoing
                    .as_ref()
                    .map_or(0, |o| o.elsewhere_short_lived_1m),
            }
        })
        .collect();

    let mut sources_per_target: HashMap<&str, usize> = HashMap::new();
    for t in &s.tasks {
        *sources_per_target.entry(t.target.as_str()).or_default() += 1;
    }
    let tasks = s
        .tasks
        .iter()
        .map(|t| TaskSeries {
            target: if sources_per_target.get(t.target.as_str()).copied() > Some(1) {
                format!("{} ({})", t.target, t.source)
            } else {
                t.target.clone()
            },
            current: t
                .value
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v.round() as u64),
            history: axis.series(&SeriesKey::Task {
                target: t.target.clone(),
                source: t.source.clone(),
            }),
            error: t.error.clone(),
            source: t.source.clone(),
            last_success_unix_ms: t.last_success_unix_ms,
            last_value: t.last_value,
        })
        .collect();

    let runtime = s.runtime.as_ref().map(|rt| RuntimeSeries {
        workers: rt.counters.workers as u64,
        alive_tasks: CountSeries {
            current: rt.counters.alive_tasks as u64,
            history: axis.series(&SeriesKey::Runtime {
                metric: RuntimeMetric::AliveTasks,
            }),
        },
        global_queue_depth: CountSeries {
            current: rt.counters.global_queue_depth as u64,
            history: axis.series(&SeriesKey::Runtime {
                metric: RuntimeMetric::GlobalQueueDepth,
            }),
        },
        busy_ratio: rt.busy_ratio,
        busy_ratio_history: axis.series(&SeriesKey::Runtime {
            metric: RuntimeMetric::BusyRatio,
        }),
    });

    CountersSnapshot {
        sampled_at_unix_ms: s.time_unix_ms.unwrap_or(0),
        history_start_unix_ms,
        step_ms,
        sockets,
        sockstat,
        protocol_rates,
        processes,
        tasks,
        resolution,
        socket_totals,
        listeners,
        listeners_omitted,
        sources: s
            .sources
            .iter()
            .map(|src| SourceStatus {
                name: src.name.clone(),
                status: source_state(src.status),
                reason: src.reason.clone(),
            })
            .collect(),
        runtime,
        traffic: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use faultline_ingest::counters::process::ProcessCounters;
    use faultline_ingest::counters::reader::CensusReading;
    use faultline_ingest::counters::sockets::{Family, SocketSource};
    use faultline_ingest::counters::store::NodeSample;
    use faultline_ingest::counters::{
        CounterError, CountersConfig, SocketCensus, SocketEntry, SocketState as S,
    };

    use super::*;
    use crate::views::test_support::*;
    use crate::views::NANOS_PER_MS;
    use faultline_series::PortSide;

    /// A node whose ports come and go: a server on 8080 with 3–6 connections, TIME-WAIT
    /// towards a port of 9000–9005 that changes every 7 samples, and a CLOSE-WAIT group
    /// every third sample.
    fn churning_sample(t_ms: i64, i: i64) -> NodeSample {
        sample_of(t_ms, i, &churning_sockets(i))
    }

    /// The sockets of [`churning_sample`] `i`.
    fn churning_sockets(i: i64) -> Vec<SocketEntry> {
        let mut entries = vec![socket(S::Listen, "0.0.0.0:8080", "0.0.0.0:0")];
        for k in 0..(3 + i % 4) {
            let remote = format!("10.0.0.2:{}", 50_000 + k);
            entries.push(socket(S::Established, "10.0.0.1:8080", &remote));
        }
        let port = 9000 + (i / 7) % 6;
        for k in 0..(1 + i % 5) {
            let local = format!("10.0.0.1:{}", 40_000 + k);
            entries.push(socket(S::TimeWait, &local, &format!("10.0.0.9:{port}")));
        }
        if i % 3 == 0 {
            entries.push(socket(S::CloseWait, "10.0.0.1:41000", "10.0.0.8:5432"));
        }
        entries
    }

    /// Sample `i` of a churning node at `t_ms` with these sockets.
    fn sample_of(t_ms: i64, i: i64, entries: &[SocketEntry]) -> NodeSample {
        let census = SocketCensus::from_entries(SocketSource::ProcNet, entries, &(32768..=60999));
        NodeSample {
            time_unix_ms: t_ms,
            sockets: CensusReading::of(Ok(census)),
            sockstat: Ok(BTreeMap::from([("TCP inuse".to_string(), i % 9)])),
            protocol: Ok(BTreeMap::from([("Tcp EstabResets".to_string(), i * 2)])),
            processes: Vec::new(),
            agent_process: None,
            runtime: None,
            scrapes: Vec::new(),
        }
    }

    #[test]
    fn the_served_document_is_encoded_once_per_sample_and_again_after_any_change() {
        let store = Arc::new(CounterStore::new(&CountersConfig::default()));
        let traces = Arc::new(TraceStore::new(
            faultline_ingest::traces::TraceStoreConfig::default(),
        ));
        let view = CounterAdapter::new(Arc::clone(&store), traces);
        let read = |resolution| view.page_json(resolution).expect("the document encodes");
        let doc = |bytes: &Arc<[u8]>| -> serde_json::Value {
            serde_json::from_slice(bytes).expect("the document is JSON")
        };
        let encoded = |resolution| {
            Arc::<[u8]>::from(serde_json::to_vec(&view.page(resolution)).expect("encodes"))
        };
        store.record_sample(churning_sample(1_000, 0));
        let first = read(HistoryResolution::Second);
        assert_eq!(first, encoded(HistoryResolution::Second));
        // Every open dashboard page reads the document at each sample: one encoding serves
        // them all.
        assert!(Arc::ptr_eq(&first, &read(HistoryResolution::Second)));
        let minutes = read(HistoryResolution::Minute);
        assert_eq!(doc(&minutes)["resolution"], "minute");
        assert!(Arc::ptr_eq(&minutes, &read(HistoryResolution::Minute)));
        assert_eq!(
            doc(&read(HistoryResolution::Second))["resolution"],
            "second"
        );

        // A task count scraped between two samples shows at once.
        store.record_scrape("user-svc", "pprof", Ok(42.0), 1_500);
        let scraped = read(HistoryResolution::Second);
        assert_eq!(doc(&scraped)["tasks"][0]["current"], 42);
        assert_eq!(scraped, encoded(HistoryResolution::Second));

        // So does the next sample, at both resolutions.
        store.record_sample(churning_sample(2_000, 1));
        let next = read(HistoryResolution::Second);
        assert_eq!(doc(&next)["sampled_at_unix_ms"], 2_000);
        assert_eq!(next, encoded(HistoryResolution::Second));
        assert!(!Arc::ptr_eq(&minutes, &read(HistoryResolution::Minute)));
    }

    /// What a kept history must equal: the store read in full, per second.
    fn whole_store_per_second(store: &CounterStore) -> CountersSnapshot {
        let whole = SnapshotOptions {
            minutes: false,
            ..SnapshotOptions::default()
        };
        counters_snapshot(&store.snapshot(&whole), HistoryResolution::Second)
    }

    #[test]
    fn a_kept_history_reads_as_the_whole_store_at_every_second() {
        // 20 sample points of at most 24 series: the ring wraps, port groups leave the top
        // ports and come back, series are evicted and recorded again under their keys.
        let config = CountersConfig {
            history_seconds: 20,
            max_series: 24,
            top_ports: 3,
            ..CountersConfig::default()
        };
        let store = CounterStore::new(&config);
        let mut kept = KeptCounters::default();
        let mut evicted = 0;
        for i in 0..150i64 {
            // Late ticks (up to 0.3 s), and now and then no sample between two reads.
            let t = 1_700_000_000_000 + i * 1000 + (i * 37) % 300;
            if i % 13 != 5 {
                store.record_sample(churning_sample(t, i));
            }
            // Now and then two or three samples between two reads (a pass that overran).
            if i % 5 == 1 || i % 7 == 2 {
                continue;
            }
            let want = whole_store_per_second(&store);
            assert_eq!(kept.snapshot(&store, t), want, "at sample {i}");
            evicted = store
                .snapshot(&SnapshotOptions::current_only())
                .bounds
                .series_evicted;
        }
        assert!(
            evicted > 0,
            "no series was evicted: the test lost its point"
        );
        let reads = kept.reads();
        // The first read and one a minute (at samples 0, 60 and 120) are full; every other
        // read, those after an eviction included, copies the new points only. Before the
        // store listed the series it removed, each eviction made the next read a full one:
        // at the series bound, with a node's ports coming and going, nearly every pass read
        // the whole history again (soak run B, 1,024 series).
        assert!(reads.since_last >= 50, "{reads:?}");
        assert_eq!(reads.full, 3, "{reads:?}");
    }

    /// A store of 20 points fed 150 `churning_sample`s, one a second, its kept history read at
    /// each and equal to a full read of the store; `each` looks at it after every sample.
    fn kept_through_churn(
        mut each: impl FnMut(i64, &CounterStore, &KeptCounters),
    ) -> (CounterStore, KeptCounters) {
        let config = CountersConfig {
            history_seconds: 20,
            ..CountersConfig::default()
        };
        let store = CounterStore::new(&config);
        let mut kept = KeptCounters::default();
        for i in 0..150i64 {
            let t = 1_700_000_000_000 + i * 1000;
            store.record_sample(churning_sample(t, i));
            let want = whole_store_per_second(&store);
            assert_eq!(kept.snapshot(&store, t), want, "at sample {i}");
            each(i, &store, &kept);
        }
        (store, kept)
    }

    /// Values the store's per-sample view holds from each series' first known point to its
    /// last: what a history kept as sparsely as the store needs.
    fn known_extent(store: &CounterStore) -> usize {
        let whole = store.snapshot(&SnapshotOptions {
            minutes: false,
            ..SnapshotOptions::default()
        });
        let seconds = whole.history.expect("a history").seconds;
        seconds
            .series
            .values()
            .filter_map(|p| {
                let first = p.iter().position(Option::is_some)?;
                let last = p.iter().rposition(Option::is_some)?;
                Some(last + 1 - first)
            })
            .sum()
    }

    #[test]
    fn a_kept_history_holds_the_store_s_points_and_no_room_past_its_window() {
        // Read in full at the first read and once a minute, then followed by new points: at
        // every sample the kept history stores exactly each series' points from its first
        // known one in the window to its last, and no series or the times hold room past the
        // 20 points of the store's ring (a Vec's own doubling took series read with 10 points
        // in full to room for 40).
        let (_, kept) = kept_through_churn(|i, store, kept| {
            let seconds = kept.seconds.as_ref().expect("a kept history");
            assert!(seconds.times_room() <= 20, "at sample {i}");
            assert_eq!(seconds.stored().0, known_extent(store), "at sample {i}");
            for (key, _, room) in seconds.rooms() {
                assert!(
                    room <= 20,
                    "at sample {i}, {key:?} holds room for {room} points"
                );
            }
        });
        let reads = kept.reads();
        assert!(reads.full >= 3 && reads.since_last >= 100, "{reads:?}");
        let seconds = kept.seconds.as_ref().expect("a kept history");
        assert_eq!(seconds.times_unix_ms().len(), 20);
        let keys: Vec<_> = seconds.keys().collect();
        assert!(keys.len() > 5, "{keys:?}");
    }

    #[test]
    fn a_kept_history_holds_no_series_without_a_point_in_its_window() {
        // TIME-WAIT towards 9000–9005 moves to the next port every 7 samples: a port's group
        // is gone for 35 samples of every 42, while the store keeps its series (up to a day
        // after it was last seen). A 20-point window holds points of at most 4 of them.
        let (store, kept) = kept_through_churn(|i, _, kept| {
            let seconds = kept.seconds.as_ref().expect("a kept history");
            for (key, stored, _) in seconds.rooms() {
                assert!(
                    stored > 0,
                    "at sample {i}, {key:?} is kept with no point in the window"
                );
            }
        });
        let reads = kept.reads();
        assert!(reads.full >= 3 && reads.since_last >= 100, "{reads:?}");
        let stored = store
            .snapshot(&SnapshotOptions::current_only())
            .bounds
            .series;
        let seconds = kept.seconds.as_ref().expect("a kept history");
        let keys: Vec<&SeriesKey> = seconds.keys().collect();
        let departed = |port| SeriesKey::PortState {
            port,
            side: PortSide::Remote,
            state: S::TimeWait,
        };
        // The window is samples 130–149: towards 9000 until 132, 9001, 9002, then 9003 since
        // 147. 9004 and 9005 (total and TIME-WAIT) had no point in it.
        for port in [9000, 9001, 9002, 9003] {
            assert!(keys.contains(&&departed(port)), "{port}");
        }
        for port in [9004, 9005] {
            assert!(!keys.contains(&&departed(port)), "{port}");
        }
        assert!(
            stored >= keys.len() + 4,
            "the store keeps {stored} series, the window has points of {}",
            keys.len()
        );
    }

    #[test]
    fn a_kept_15_minute_history_of_churning_ports_costs_their_points_not_the_window() {
        // The default 900-point window on a node whose outbound TIME-WAIT moves to another
        // port every 7 samples (150 ports in all), 1,000 samples: most series live 7 samples
        // of the window. Kept dense, every series with a point in the window was 900 slots of
        // 8 bytes (the soak's 6.5 MB at the 1,024-series bound); kept as the store keeps them,
        // the same answers cost each series its own points.
        let store = CounterStore::new(&CountersConfig::default());
        let mut kept = KeptCounters::default();
        let t0 = 1_700_000_000_000;
        for i in 0..1_000i64 {
            let t = t0 + i * 1000;
            let mut sockets = churning_sockets(i);
            let port = 20_000 + (i / 7) % 150;
            sockets.push(socket(
                S::TimeWait,
                "10.0.0.1:45000",
                &format!("10.0.0.7:{port}"),
            ));
            store.record_sample(sample_of(t, i, &sockets));
            kept.snapshot(&store, t);
        }
        let t = t0 + 1_000_000;
        assert_eq!(kept.snapshot(&store, t), whole_store_per_second(&store));
        let seconds = kept.seconds.as_ref().expect("a kept history");
        let window = seconds.times_unix_ms().len();
        let series = seconds.keys().count();
        let (stored, room) = seconds.stored();
        assert_eq!(window, 900);
        assert_eq!(stored, known_extent(&store));
        // What the dense copy held: every series, a slot of `Option<f32>` per sample.
        let dense_bytes = series * window * std::mem::size_of::<Option<f32>>();
        let kept_bytes = room * std::mem::size_of::<f32>();
        assert!(
            series >= 200 && kept_bytes * 10 < dense_bytes,
            "{series} series over {window} samples: {kept_bytes} bytes kept \
             ({stored} values in room for {room}), {dense_bytes} dense"
        );
    }
    #[test]
    fn every_service_s_traffic_is_charted_on_the_counters_axis_per_second_only() {
        use faultline_ingest::traces::RequestSource;
        let stores = stores();
        let now_s = NOW / 1_000_000_000;
        // 90 samples, one a second, up to now.
        for sec in (now_s - 89)..=now_s {
            stores.counters.record_sample(sample(sec * 1000, 2, 0, 100));
        }
        // ledger: 10 requests a second over the last 80 s, 2 of them failing from 30 s ago.
        for sec in (now_s - 80)..now_s {
            for k in 0..10 {
                let failed = sec >= now_s - 30 && k < 2;
                stores.traces.traffic().record(
                    "ledger",
                    sec * 1_000_000_000 + k * 1_000_000,
                    failed,
                    RequestSource::ServerSpan,
                );
            }
        }
        let views = views_at(&stores, NOW);
        let c = views.counters.page(HistoryResolution::Second);
        assert_eq!(c.traffic.len(), 1, "{:?}", c.traffic);
        let ledger = &c.traffic[0];
        assert_eq!(ledger.service, "ledger");
        // The same axis as every other series of the document.
        let axis = c.sockets[0].history.points.len();
        assert_eq!(ledger.requests.points.len(), axis);
        assert_eq!(ledger.errors.points.len(), axis);
        assert_eq!(ledger.requests.points.last(), Some(&Some(10.0)));
        assert_eq!(ledger.errors.points.last(), Some(&Some(2.0)));
        // A minute ago the failures had not started: +2/s since.
        assert_eq!(ledger.errors.delta_1m, Some(2.0));
        // Unknown before the first request, not 0.
        assert_eq!(ledger.requests.points[0], None);
        let minute = views.counters.page(HistoryResolution::Minute);
        assert!(minute.traffic.is_empty(), "kept per second only");
        // The snapshot the diagnosis reads once a second lays no traffic on its axis.
        assert!(views.counters.snapshot().traffic.is_empty());
    }

    #[test]
    fn a_port_group_whose_sockets_are_gone_keeps_its_history_in_the_window() {
        let stores = stores();
        let t0 = NOW / NANOS_PER_MS;
        stores.counters.record_sample(sample(t0, 2, 30, 100));
        // The CLOSE_WAIT leak towards 5432 ended: no socket on that port any more.
        stores.counters.record_sample(sample(t0 + 1_000, 2, 0, 100));
        let c = views_at(&stores, NOW).counters.snapshot();
        let cw = c
            .sockets
            .iter()
            .find(|s| s.port == 5432 && s.side == PortSide::Remote)
            .unwrap_or_else(|| panic!("the ended leak vanished: {:?}", c.sockets));
        assert_eq!(cw.state, SocketState::CloseWait);
        assert_eq!(cw.current, 0);
        assert_eq!(cw.history.points[0], Some(30.0));
    }

    #[test]
    fn the_current_read_lists_the_same_series_without_their_history() {
        let stores = stores();
        let t0 = NOW / NANOS_PER_MS;
        stores.counters.record_sample(sample(t0, 2, 30, 100));
        stores.counters.record_sample(sample(t0 + 1_000, 5, 0, 110));
        stores.counters.record_sample(sample(t0 + 2_000, 9, 0, 150));
        let views = views_at(&stores, NOW);
        let full = views.counters.snapshot();
        let current = views.counters.current();
        let row = |s: &SocketSeries| (s.port, s.side, s.state, s.current);
        let rows = |c: &CountersSnapshot| c.sockets.iter().map(row).collect::<Vec<_>>();
        // The ended CLOSE_WAIT leak stays listed at 0 in both.
        assert!(rows(&current).contains(&(5432, PortSide::Remote, SocketState::CloseWait, 0)));
        assert_eq!(rows(&current), rows(&full));
        assert_eq!(current.sampled_at_unix_ms, full.sampled_at_unix_ms);
        assert_eq!(current.tasks.len(), full.tasks.len());
        assert!(full.sockets.iter().all(|s| s.history.points.len() == 3));
        assert!(current.sockets.iter().all(|s| s.history.points.len() <= 1));
    }

    #[test]
    fn counters_show_sockets_per_port_and_state_with_history() {
        let stores = stores();
        let t0 = NOW / NANOS_PER_MS;
        stores.counters.record_sample(sample(t0, 2, 1, 100));
        stores.counters.record_sample(sample(t0 + 1_000, 5, 2, 110));
        // A missed tick: the third sample comes two intervals later.
        stores.counters.record_sample(sample(t0 + 3_000, 9, 4, 150));
        let views = views_at(&stores, NOW);
        let c = views.counters.snapshot();
        assert_eq!(c.sampled_at_unix_ms, t0 + 3_000);
        assert_eq!(c.step_ms, 1_000);
        assert_eq!(c.history_start_unix_ms, t0);

        let find = |port: u16, side: PortSide, state: SocketState| {
            c.sockets
                .iter()
                .find(|s| s.port == port && s.side == side && s.state == state)
                .unwrap_or_else(|| panic!("{port} {side:?} {state:?} in {:?}", c.sockets))
        };
        let tw = find(8080, PortSide::Local, SocketState::TimeWait);
        assert_eq!(tw.current, 9);
        assert_eq!(tw.history.points, [Some(2.0), Some(5.0), None, Some(9.0)]);
        assert_eq!(
            find(8080, PortSide::Local, SocketState::Established).current,
            2
        );
        assert_eq!(find(8080, PortSide::Local, SocketState::Listen).current, 1);
        let cw = find(5432, PortSide::Remote, SocketState::CloseWait);
        assert_eq!(cw.current, 4);
        assert_eq!(cw.history.points, [Some(1.0), Some(2.0), None, Some(4.0)]);
        assert!(
            c.sockets
                .iter()
                .all(|s| s.history.points.len() == 4
                    && !(s.port == 5432 && s.side == PortSide::Local))
        );

        let tcp_tw = c
            .sockstat
            .iter()
            .find(|s| s.name == "TCP tw")
            .expect("sockstat TCP tw");
        assert_eq!(tcp_tw.unit, "sockets");
        assert_eq!(tcp_tw.current, Some(9.0));
        assert_eq!(
            tcp_tw.history.points,
            [Some(2.0), Some(5.0), None, Some(9.0)]
        );
        let resets = c
            .protocol_rates
            .iter()
            .find(|s| s.name == "Tcp EstabResets")
            .expect("reset rate");
        assert_eq!(resets.unit, "/s");
        assert_eq!(resets.current, Some(20.0));
        assert_eq!(resets.history.points, [None, Some(10.0), None, Some(20.0)]);
        assert_eq!(resets.total, Some(150));

        let user = c
            .processes
            .iter()
            .find(|p| p.name == "user-svc")
            .expect("user-svc process");
        assert_eq!(user.pid, 4242);
        assert_eq!(user.fds.points, [Some(65.0), Some(66.0), None, Some(68.0)]);
        assert_eq!(user.threads.points.last(), Some(&Some(18.0)));
        let proxy = c
            .processes
            .iter()
            .find(|p| p.name == "db-proxy")
            .expect("db-proxy listed");
        assert_eq!(proxy.pid, 0);
        assert!(proxy.fds.points.iter().all(Option::is_none));
        assert!(proxy.current.is_none());
        assert!(proxy
            .error
            .as_deref()
            .is_some_and(|e| e.contains("db-proxy")));
        let now = user.current.as_ref().expect("user-svc read");
        assert_eq!((now.open_fds, now.fd_limit), (68, Some(1024)));
        assert_eq!(now.rss_bytes, 1 << 20);
        assert_eq!(
            user.rss_bytes.points.last(),
            Some(&Some(f64::from(1u32 << 20)))
        );
        // Less than a minute of history: no change over a minute yet.
        assert_eq!(user.fds.delta_1m, None);
        // /proc/net/tcp counted the sockets: listeners without a backlog.
        let listener = &c.listeners[0];
        assert_eq!(
            (listener.port, listener.backlog, listener.fill),
            (8080, None, None)
        );
        assert_eq!(
            c.socket_totals.as_ref().map(|t| t.source),
            Some(faultline_web::model::SocketSource::Proc)
        );

        let task = |target: &str| {
            c.tasks
                .iter()
                .find(|t| t.target == target)
                .unwrap_or_else(|| panic!("{target} in {:?}", c.tasks))
        };
        let user_tasks = task("user-svc");
        assert_eq!(user_tasks.current, Some(440));
        assert_eq!(
            user_tasks.history.points,
            [Some(410.0), Some(420.0), None, Some(440.0)]
        );
        assert_eq!(user_tasks.error, None);
        assert_eq!(user_tasks.source, "pprof");
        assert_eq!(user_tasks.last_success_unix_ms, Some(t0 + 3_000));
        let order = task("order-svc");
        assert_eq!(order.current, None);
        assert_eq!(order.error.as_deref(), Some("connection refused"));
        assert_eq!(order.last_success_unix_ms, None);
        assert!(order.history.points.iter().all(Option::is_none));
    }

    #[test]
    fn tasks_reported_by_two_sources_are_told_apart() {
        let stores = stores();
        let t0 = NOW / NANOS_PER_MS;
        stores.counters.record_sample(sample(t0, 0, 0, 0));
        assert!(stores
            .counters
            .record_task("user-svc", "otlp", 512.0, NOW + 1));
        let c = views_at(&stores, NOW).counters.snapshot();
        let mut targets: Vec<&str> = c.tasks.iter().map(|t| t.target.as_str()).collect();
        targets.sort();
        assert_eq!(
            targets,
            ["order-svc", "user-svc (otlp)", "user-svc (pprof)"]
        );
        let otlp = c
            .tasks
            .iter()
            .find(|t| t.target == "user-svc (otlp)")
            .expect("otlp task");
        assert_eq!(otlp.current, Some(512));
    }

    /// A node served by netlink: a listener on 8080 whose accept queue is at its backlog, one
    /// on [::]:9090 with room, `time_wait` TIME_WAIT sockets on 8080, one socket towards each of
    /// three other services, `/proc/net/sockstat` missing, the agent's own process and runtime.
    fn netlink_sample(t_ms: i64, time_wait: u16, alive_tasks: usize, busy_s: f64) -> NodeSample {
        let listener = |local: &str, family: Family, queue: u32, backlog: u32| SocketEntry {
            family,
            state: S::Listen,
            local: local.parse().expect("test address"),
            remote: SocketEntry::unspecified(family),
            recv_queue: queue,
            send_queue: Some(backlog),
            inode: 7,
        };
        let mut entries = vec![
            listener("0.0.0.0:8080", Family::Ipv4, 128, 128),
            listener("[::]:9090", Family::Ipv6, 1, 4096),
            socket(S::Established, "10.0.0.1:40001", "10.0.0.9:5432"),
            socket(S::Established, "10.0.0.1:40002", "10.0.0.9:6379"),
            socket(S::SynSent, "10.0.0.1:40003", "10.0.0.9:9200"),
        ];
        entries.extend(time_wait_on_8080(time_wait));
        let census = SocketCensus::from_entries(SocketSource::Netlink, &entries, &(32768..=60999));
        NodeSample {
            time_unix_ms: t_ms,
            sockets: CensusReading::of(Ok(census)),
            sockstat: Err(CounterError::Read {
                path: "/proc/net/sockstat".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
            protocol: Ok(BTreeMap::from([("Tcp EstabResets".to_string(), 5)])),
            processes: Vec::new(),
            agent_process: Some(ProcessCounters {
                pids: vec![777],
                open_fds: 31,
                fd_limit: None,
                threads: 9,
                rss_bytes: 48 << 20,
            }),
            runtime: Some(faultline_ingest::counters::runtime::RuntimeCounters {
                workers: 2,
                alive_tasks,
                global_queue_depth: 3,
                busy_seconds_total: busy_s,
            }),
            scrapes: Vec::new(),
        }
    }

    #[test]
    fn counters_show_listen_queues_totals_other_ports_sources_and_the_runtime() {
        let stores = stores_with(CountersConfig {
            top_ports: 2,
            ..CountersConfig::default()
        });
        let t0 = NOW / NANOS_PER_MS;
        // 62 samples a second apart: TIME_WAIT grows by 2 a second, alive tasks by 1.
        for i in 0..62u16 {
            stores.counters.record_sample(netlink_sample(
                t0 + i64::from(i) * 1_000,
                2 * i,
                40 + usize::from(i),
                f64::from(i) * 0.5,
            ));
        }
        let c = views_at(&stores, NOW).counters.snapshot();
        assert_eq!(c.resolution, HistoryResolution::Second);

        // Accept queues, fullest first; the history is the port's queue length.
        let l: Vec<(&str, u16, u64, Option<u64>)> = c
            .listeners
            .iter()
            .map(|l| (l.address.as_str(), l.port, l.queue, l.backlog))
            .collect();
        assert_eq!(
            l,
            [
                ("0.0.0.0", 8080, 128, Some(128)),
                ("::", 9090, 1, Some(4096))
            ]
        );
        assert_eq!(c.listeners[0].fill, Some(1.0));
        assert_eq!(c.listeners[0].history.points.last(), Some(&Some(128.0)));
        assert_eq!(c.listeners[0].history.delta_1m, Some(0.0));
        assert_eq!(c.listeners_omitted, 0);

        // Totals by state, every state, with the change over the last minute: the latest
        // sample (61 s) against the newest at least 60 s older (1 s).
        let totals = c.socket_totals.as_ref().expect("socket totals");
        assert_eq!(totals.source, faultline_web::model::SocketSource::Netlink);
        assert_eq!(totals.by_state.len(), 11);
        let tw = totals
            .by_state
            .iter()
            .find(|s| s.state == SocketState::TimeWait)
            .expect("TIME_WAIT total");
        assert_eq!(tw.current, 122);
        assert_eq!(tw.history.delta_1m, Some(120.0));
        assert_eq!(tw.history.points.len(), 62);
        assert_eq!(totals.total, 122 + 5);
        assert!(totals
            .ipv6
            .iter()
            .any(|s| s.state == SocketState::Listen && s.count == 1));
        // Top 2 groups: 8080 in (TIME_WAIT + listener) and one of the single-socket groups;
        // the other three (9090 in, two outbound) are summed.
        assert_eq!(totals.other_ports.port_groups, 3);
        assert_eq!(totals.other_ports.total, 3);
        assert_eq!(totals.other_ports.history.points.last(), Some(&Some(3.0)));
        let tw_8080 = c
            .sockets
            .iter()
            .find(|s| s.port == 8080 && s.state == SocketState::TimeWait)
            .expect("8080 TIME_WAIT");
        assert_eq!(tw_8080.history.delta_1m, Some(120.0));

        // sockstat is missing: unavailable with the reason, and no values (not zeros).
        let sockstat = c
            .sources
            .iter()
            .find(|s| s.name == "sockstat")
            .expect("sockstat source");
        assert_eq!(sockstat.status, SourceState::Unavailable);
        assert!(sockstat
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("/proc/net/sockstat")));
        assert!(c.sockstat.is_empty());
        assert!(c
            .sources
            .iter()
            .any(|s| s.name == "sockets.netlink" && s.status == SourceState::Available));

        // The agent's own process and runtime.
        let me = &c.processes[0];
        assert_eq!((me.name.as_str(), me.pid), ("faultline", 777));
        let now = me.current.as_ref().expect("agent process read");
        assert_eq!(
            (now.open_fds, now.fd_limit, now.rss_bytes),
            (31, None, 48 << 20)
        );
        assert_eq!(
            me.rss_bytes.points.last(),
            Some(&Some(f64::from(48u32 << 20)))
        );
        let rt = c.runtime.as_ref().expect("runtime");
        assert_eq!(rt.workers, 2);
        assert_eq!(rt.alive_tasks.current, 101);
        assert_eq!(rt.alive_tasks.history.delta_1m, Some(60.0));
        assert_eq!(rt.global_queue_depth.current, 3);
        // 0.5 s busy per second over 2 workers.
        assert_eq!(rt.busy_ratio, Some(0.25));
        assert_eq!(rt.busy_ratio_history.points.last(), Some(&Some(0.25)));
    }

    #[test]
    fn minute_resolution_reads_the_24_hour_ring_with_the_same_deltas() {
        let stores = stores_with(CountersConfig {
            interval_ms: 5_000,
            ..CountersConfig::default()
        });
        // Three minutes and a bit of samples, every 5 s, from the start of a minute.
        let t0 = NOW / NANOS_PER_MS / 60_000 * 60_000;
        for i in 0..40u16 {
            let tw = if i == 13 { 90 } else { i };
            stores
                .counters
                .record_sample(netlink_sample(t0 + i64::from(i) * 5_000, tw, 40, 0.0));
        }
        let views = views_at(&stores, NOW);
        let seconds = views.counters.snapshot();
        let minutes = views
            .counters
            .snapshot_at_resolution(HistoryResolution::Minute);
        assert_eq!(minutes.resolution, HistoryResolution::Minute);
        assert_eq!(minutes.step_ms, 60_000);
        assert_eq!(minutes.history_start_unix_ms, t0);
        assert_eq!(minutes.sampled_at_unix_ms, seconds.sampled_at_unix_ms);
        let tw = |c: &CountersSnapshot| {
            c.socket_totals
                .as_ref()
                .and_then(|t| t.by_state.iter().find(|s| s.state == SocketState::TimeWait))
                .cloned()
                .expect("TIME_WAIT")
        };
        // Closed minutes 0..=2 (samples 0-11, 12-23, 24-35), each its peak: the 5-second
        // spike to 90 in the second minute is kept.
        assert_eq!(
            tw(&minutes).history.points,
            [Some(11.0), Some(90.0), Some(35.0)]
        );
        assert_eq!(tw(&minutes).current, 39);
        // The change over a minute does not depend on the resolution shown: 39 - 27.
        assert_eq!(tw(&minutes).history.delta_1m, Some(12.0));
        assert_eq!(tw(&seconds).history.delta_1m, Some(12.0));
        assert_eq!(tw(&seconds).history.points.len(), 40);
    }

    #[test]
    fn the_diagnosis_reads_when_each_points_sockets_were_counted() {
        // Counted at t0 and t0 + 1 s; the next two samples repeat the census of t0 + 1 s.
        let stores = stores();
        let t0 = NOW / NANOS_PER_MS - 3_000;
        for i in 0..4 {
            let t = t0 + i * 1_000;
            let mut sample = netlink_sample(t, 3, 40, 0.0);
            sample.sockets.repeats_unix_ms = (i > 1).then_some(t0 + 1_000);
            stores.counters.record_sample(sample);
        }
        let mut c = views_at(&stores, NOW).counters.snapshot();
        let (history, _) = crate::diagnosis::counter_history(&mut c);
        let counted: Vec<i64> = (0..4)
            .map(|i| {
                let at = usize::try_from((t0 + i * 1_000 - history.start_unix_ms) / 1_000)
                    .expect("on the axis");
                history.counted_at(at) - t0
            })
            .collect();
        assert_eq!(counted, vec![0, 1_000, 1_000, 1_000]);
    }

    #[test]
    fn a_failing_socket_source_shows_no_socket_figures_and_says_why() {
        let stores = stores();
        let t0 = NOW / NANOS_PER_MS;
        stores
            .counters
            .record_sample(netlink_sample(t0, 3, 40, 0.0));
        let mut broken = netlink_sample(t0 + 1_000, 3, 40, 0.0);
        broken.sockets = CensusReading {
            census: Err(CounterError::Netlink(std::io::Error::from(
                std::io::ErrorKind::PermissionDenied,
            ))),
            netlink_problem: Some("netlink refused".into()),
            ..CensusReading::of(Err(CounterError::Worker(String::new())))
        };
        stores.counters.record_sample(broken);
        let c = views_at(&stores, NOW).counters.snapshot();
        assert!(c.socket_totals.is_none());
        assert!(c.listeners.is_empty() && c.sockets.is_empty());
        let netlink = c
            .sources
            .iter()
            .find(|s| s.name == "sockets.netlink")
            .expect("netlink source");
        assert_eq!(netlink.status, SourceState::Failing);
        assert!(netlink.reason.is_some());
        // The agent itself is still counted.
        assert!(c.runtime.is_some() && c.processes[0].current.is_some());
    }

    #[test]
    fn counter_store_bounds_are_store_counters() {
        let stores = stores_with(CountersConfig {
            max_task_targets: 1,
            ..CountersConfig::default()
        });
        assert!(stores.counters.record_task("a", "otlp", 1.0, NOW));
        assert!(!stores.counters.record_task("b", "otlp", 1.0, NOW));
        let counters = views_at(&stores, NOW).counters.store_counters();
        let value = |name: &str| counters.iter().find(|c| c.name == name).map(|c| c.value);
        assert_eq!(value("counter_task_targets"), Some(1.0));
        assert_eq!(value("counter_task_targets_rejected_total"), Some(1.0));
        assert_eq!(value("counter_series_evicted_total"), Some(0.0));
        assert!(value("counter_points").is_some() && value("counter_points_room").is_some());
    }
}
