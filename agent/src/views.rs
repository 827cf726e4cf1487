//! The web crate's read-only views over the agent's real stores.
//!
//! `faultline-web` reads everything through three traits of its own ([`ClusterView`],
//! [`TraceView`], [`CounterView`]) and returns its own documents (DTOs), so that neither side
//! depends on the other's insides. This module is the one place where the two meet: one adapter
//! per trait maps the clustering [`Engine`], the [`TraceStore`] and the [`CounterStore`] onto
//! those documents, and [`build`] bundles them into the [`Views`] the router is given.
//!
//! The mapping follows the web model's conventions: ids are lowercase hex, pattern and counter
//! times are Unix milliseconds, span times Unix microseconds. Where a document asks for
//! something a store does not keep (services per template, the position of a masked parameter,
//! the count of values beyond the engine's top list), the field says so in its mapping function
//! and is left empty rather than made up.
//!
//! Cost: the cluster list is read on every list request and every `/metrics` scrape, so the
//! rows are cached behind an `Arc<[ClusterSummary]>` and rebuilt at most every
//! [`ROWS_REFRESH`] (and only every [`ROWS_IDLE_REFRESH`] while the engine saw no new event);
//! the per-minute counts behind each row's sparkline are fetched again only for clusters whose
//! counts changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faultline_clustering::emergence::{Emergence as EngineEmergence, EmergenceKind as EngineKind};
use faultline_clustering::engine::SECOND_HISTORY;
use faultline_clustering::engine::{
    ClusterDetail as EngineDetail, ClusterQuery, ClusterSummary as EngineSummary,
};
use faultline_clustering::{ClusterId, Engine};
use faultline_diagnosis::onset::surge_start_minute;
use faultline_diagnosis::{
    what_moved, CounterHistory, CounterSeries, Emerging, EmergingKind, PatternActivity,
};
use faultline_ingest::counters::proc_net::{PROTOCOL_COUNTERS, SOCKSTAT_KEYS};
use faultline_ingest::counters::sockets::SocketSource as StoreSocketSource;
use faultline_ingest::counters::store::CountersSnapshot as StoreSnapshot;
use faultline_ingest::counters::{CounterStore, SnapshotOptions, SourceState as StoreSourceState};
use faultline_ingest::traces::{
    CallChain as StoreChain, ChainNode, SpanKind, StatusCode, TraceFilter, TraceStore,
    TraceSummary as StoreTraceSummary,
};
use faultline_ingest::{Level, LogRecord, TraceId};
use faultline_series::{ProcessMetric, RuntimeMetric, SeriesKey};
use faultline_web::model::Culprit;
use faultline_web::model::{
    Attribute, CallChain, ChainLog, ChainSpan, ClusterDetail, ClusterSummary, ClusterView,
    CountSeries, CounterView, CountersSnapshot, Emergence, EmergenceKind, HistoryResolution,
    ListenQueue, MinuteCounts, NamedSeries, OtherPorts, ParameterDistribution, ProcessNow,
    ProcessSeries, RuntimeSeries, Sample, SecondCounts, SeenIn, Series, SocketSeries, SocketSource,
    SocketState, SocketTotals, SourceState, SourceStatus, SpanStatus, StateCount, StateSeries,
    StoreCounter, TaskSeries, TemplateRow, TraceQuery, TraceSummary, TraceView, ValueCount,
};
use faultline_web::model::{DiagnosisView, MovedWithIt};
use faultline_web::{LiveUpdates, Views};

use crate::culprits;

/// Shortest time between two rebuilds of the cluster rows.
pub const ROWS_REFRESH: Duration = Duration::from_millis(500);

/// While the engine saw no new event, the rows are still rebuilt this often: emergence, rates
/// and sparklines move with the clock, and a background DBSCAN re-run can regroup clusters.
pub const ROWS_IDLE_REFRESH: Duration = Duration::from_secs(5);

/// Log-record attribute naming the cluster the pipeline assigned the record to; shown as the
/// log's `cluster_id` in call chains when it holds a well-formed id.
pub const CLUSTER_ID_ATTRIBUTE: &str = "faultline.cluster_id";

/// Minutes of per-minute counts in a row's sparkline.
const SPARKLINE_MINUTES: i64 = 60;

/// The engine's default emergence window, assumed when its figures do not give it back.
const RATE_WINDOW_MINUTES: i64 = 5;

/// Longest per-minute series of a cluster's detail (one day).
const MAX_DETAIL_MINUTES: i64 = 24 * 60;

/// Emerging rows of the list that carry their culprit (the overview shows the first few).
const ROW_CULPRITS: usize = 10;

/// Traces a list row's culprit is voted over (the pattern page reads more).
const ROW_CULPRIT_TRACES: usize = 50;

/// Most culprit verdicts cached (stale ones are dropped first when full).
const MAX_CACHED_CULPRITS: usize = 256;

/// How long a list row's culprit is reused before it is judged again.
const ROW_CULPRIT_REFRESH: Duration = Duration::from_secs(5);

/// Most trace ids listed in a cluster's detail.
const MAX_DETAIL_TRACES: usize = 50;

const NANOS_PER_MS: i64 = 1_000_000;
const NANOS_PER_US: i64 = 1_000;
const NANOS_PER_MIN: i64 = 60_000_000_000;
const MS_PER_MIN: i64 = 60_000;

/// "Now" in Unix nanoseconds; the system clock in the agent, a fixed time in tests and replays.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Counters of the pipeline around the stores (records dropped, queues full, ...), exported with
/// the cluster store's own counters.
pub type PipelineCounters = Arc<dyn Fn() -> Vec<StoreCounter> + Send + Sync>;

/// Builds the web crate's views over the real stores.
#[cfg_attr(not(test), allow(dead_code))]
pub fn build(
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    counters: Arc<CounterStore>,
    live: LiveUpdates,
    pipeline_counters: PipelineCounters,
) -> Views {
    build_with_clock(
        engine,
        traces,
        counters,
        live,
        pipeline_counters,
        Arc::new(system_now_unix_nanos),
    )
}

/// [`build`] with another notion of "now" (Unix nanoseconds), e.g. the time of the last
/// replayed record, so that emergence, rates and sparklines are judged at that time.
#[cfg_attr(not(test), allow(dead_code))]
pub fn build_with_clock(
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    counters: Arc<CounterStore>,
    live: LiveUpdates,
    pipeline_counters: PipelineCounters,
    clock: Clock,
) -> Views {
    Views {
        clusters: Arc::new(ClusterAdapter::new(
            Arc::clone(&engine),
            Arc::clone(&traces),
            pipeline_counters,
            Arc::clone(&clock),
            ROWS_REFRESH,
        )),
        traces: Arc::new(TraceAdapter { store: traces }),
        counters: Arc::new(CounterAdapter {
            store: Arc::clone(&counters),
        }),
        diagnosis: Arc::new(DiagnosisAdapter {
            engine,
            counters,
            clock,
        }),
        // The agent's diagnosis loop replaces this board with the one it fills (`run`).
        incidents: Arc::new(crate::diagnosis::IncidentBoard::default()),
        live,
    }
}

fn system_now_unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// [`ClusterView`] over the clustering engine (plus the trace store, for the traces a cluster
/// was tagged on).
struct ClusterAdapter {
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    pipeline_counters: PipelineCounters,
    clock: Clock,
    refresh: Duration,
    cache: Mutex<RowCache>,
    /// Recent culprit verdicts by (pattern, traces read), at most [`MAX_CACHED_CULPRITS`].
    culprits: Mutex<CulpritCache>,
}

/// Culprit verdicts by (pattern id, traces read), with when they were judged.
type CulpritCache = HashMap<(String, usize), (Instant, Option<Culprit>)>;

/// What the engine looked like when the rows were built: events seen, templates, clusters.
type EngineVersion = (u64, usize, usize);

/// What decides whether a cluster's per-minute counts may have changed.
type RowKey = (u64, i64, i64, usize);

struct RowCache {
    built: Option<(Instant, EngineVersion)>,
    rows: Arc<[ClusterSummary]>,
    /// Per-minute counts (minute start in Unix seconds, count) of each cluster, with the key
    /// they were fetched at.
    minutes: HashMap<ClusterId, (RowKey, Vec<(i64, u64)>)>,
}

impl ClusterAdapter {
    fn new(
        engine: Arc<Engine>,
        traces: Arc<TraceStore>,
        pipeline_counters: PipelineCounters,
        clock: Clock,
        refresh: Duration,
    ) -> Self {
        ClusterAdapter {
            engine,
            traces,
            pipeline_counters,
            clock,
            refresh,
            cache: Mutex::new(RowCache {
                built: None,
                rows: Arc::from(Vec::new()),
                minutes: HashMap::new(),
            }),
            culprits: Mutex::new(HashMap::new()),
        }
    }

    fn version(&self) -> EngineVersion {
        let (counters, templates, clusters) = self.engine.counters();
        (counters.events, templates, clusters)
    }

    /// Rebuilds every row; per-minute counts are fetched again only where a row's counts moved.
    fn rebuild(&self, cache: &mut RowCache) -> Arc<[ClusterSummary]> {
        let now = (self.clock)();
        let summaries = self.engine.clusters(&ClusterQuery {
            now_unix_nanos: now,
            ..ClusterQuery::default()
        });
        let mut minutes = HashMap::with_capacity(summaries.len());
        let mut rows = Vec::with_capacity(summaries.len());
        for summary in &summaries {
            let key: RowKey = (
                summary.count,
                summary.first_seen_unix_nanos,
                summary.last_seen_unix_nanos,
                summary.templates,
            );
            let per_minute = match cache.minutes.remove(&summary.id) {
                Some((cached_key, counts)) if cached_key == key => counts,
                _ => match self.engine.cluster(summary.id, now) {
                    Some(detail) => detail.per_minute,
                    // Regrouped between the two calls: no counts for this round.
                    None => Vec::new(),
                },
            };
            rows.push(summary_row(summary, &per_minute, now));
            minutes.insert(summary.id, (key, per_minute));
        }
        self.judge_culprits(&mut rows);
        cache.minutes = minutes;
        cache.rows = Arc::from(rows);
        Arc::clone(&cache.rows)
    }

    /// Sets the culprit of the most emerging rows (at most [`ROW_CULPRITS`]), each judged
    /// again at most every [`ROW_CULPRIT_REFRESH`]: the list is rebuilt every half second
    /// under load, a verdict reads up to [`ROW_CULPRIT_TRACES`] chains.
    fn judge_culprits(&self, rows: &mut [ClusterSummary]) {
        let mut emerging: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].emergence.is_some())
            .collect();
        emerging.sort_by(|&a, &b| {
            let score = |i: usize| rows[i].emergence.as_ref().map_or(0.0, |e| e.score);
            score(b).total_cmp(&score(a))
        });
        emerging.truncate(ROW_CULPRITS);
        for i in emerging {
            rows[i].culprit = self.culprit(&rows[i].id, ROW_CULPRIT_TRACES);
        }
    }

    /// A pattern's culprit voted over its `limit` most recent traces, reused for
    /// [`ROW_CULPRIT_REFRESH`]: the pattern page refreshes with every change and the incident
    /// tracker reads every emerging pattern's detail each second.
    fn culprit(&self, id: &str, limit: usize) -> Option<Culprit> {
        let key = (id.to_owned(), limit);
        {
            let cache = self.culprits.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, verdict)) = cache.get(&key) {
                if at.elapsed() < ROW_CULPRIT_REFRESH {
                    return verdict.clone();
                }
            }
        }
        let verdict = culprits::of_pattern(&self.traces, id, limit);
        let mut cache = self.culprits.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_CULPRITS {
            cache.retain(|_, (at, _)| at.elapsed() < ROW_CULPRIT_REFRESH);
        }
        if cache.len() < MAX_CACHED_CULPRITS {
            cache.insert(key, (Instant::now(), verdict.clone()));
        }
        verdict
    }

    /// Trace ids of a cluster, newest first: those of its samples and those the pipeline tagged
    /// in the trace store.
    fn trace_ids(&self, id: &str, detail: &EngineDetail) -> Vec<String> {
        let mut dated: Vec<(i64, String)> = detail
            .samples
            .iter()
            .filter_map(|s| {
                let trace = s.trace_id.as_deref()?.to_ascii_lowercase();
                Some((s.time_unix_nanos, trace))
            })
            .collect();
        let tagged = self.traces.list(&TraceFilter {
            cluster: Some(id.to_owned()),
            limit: Some(MAX_DETAIL_TRACES),
            ..TraceFilter::default()
        });
        dated.extend(
            tagged
                .into_iter()
                .map(|t| (t.start_unix_nanos, t.trace_id.to_string())),
        );
        dated.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut ids: Vec<String> = Vec::new();
        for (_, trace) in dated {
            if ids.len() >= MAX_DETAIL_TRACES {
                break;
            }
            if !ids.contains(&trace) {
                ids.push(trace);
            }
        }
        ids
    }
}

impl ClusterView for ClusterAdapter {
    fn summaries(&self) -> Arc<[ClusterSummary]> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let version = self.version();
        if let Some((at, built_version)) = cache.built {
            let age = at.elapsed();
            let fresh = age < self.refresh
                || (built_version == version && age < ROWS_IDLE_REFRESH.max(self.refresh));
            if fresh {
                return Arc::clone(&cache.rows);
            }
        }
        let rows = self.rebuild(&mut cache);
        cache.built = Some((Instant::now(), version));
        rows
    }

    fn detail(&self, id: &str) -> Option<ClusterDetail> {
        let cluster = parse_cluster_id(id)?;
        let now = (self.clock)();
        let detail = self.engine.cluster(cluster, now)?;
        let summary = summary_row(&detail.summary, &detail.per_minute, now);
        let trace_ids = self.trace_ids(id, &detail);
        let only_severity = match detail.severities.as_slice() {
            [(severity, _)] => severity.clone(),
            _ => String::new(),
        };
        Some(ClusterDetail {
            summary,
            templates: detail.templates.iter().map(template_row).collect(),
            parameters: parameters(&detail.top_values, detail.values_total),
            reports: detail.summary.reports,
            seen_in: detail
                .sources
                .iter()
                .map(|(source, occurrences)| SeenIn {
                    source: source.name().to_owned(),
                    occurrences: *occurrences,
                })
                .collect(),
            service_occurrences: detail
                .services
                .iter()
                .map(|(service, count)| ValueCount {
                    value: service.clone(),
                    count: *count,
                })
                .collect(),
            per_minute: detail_minutes(&detail.per_minute, now),
            samples: detail
                .samples
                .iter()
                .map(|s| Sample {
                    time_unix_ms: s.time_unix_nanos.div_euclid(NANOS_PER_MS),
                    service: s.service.clone().unwrap_or_default(),
                    // The engine keeps no severity per sample, only counts per severity: a
                    // sample's level is known when the cluster only ever had one, else empty.
                    level: only_severity.clone(),
                    message: s.message.clone(),
                    trace_id: s.trace_id.as_deref().map(str::to_ascii_lowercase),
                    span_id: s.span_id.as_deref().map(str::to_ascii_lowercase),
                })
                .collect(),
            trace_ids,
            culprit: self.culprit(id, culprits::PATTERN_TRACES),
        })
    }

    fn store_counters(&self) -> Vec<StoreCounter> {
        let (c, templates, clusters) = self.engine.counters();
        let mut out = vec![
            counter(
                "cluster_events_total",
                "Error events given to the clustering engine.",
                c.events as f64,
            ),
            counter(
                "cluster_other_events_total",
                "Error events counted as other because their new shape or root did not fit the bounds.",
                c.other_events as f64,
            ),
            counter(
                "cluster_templates_refused_total",
                "New message shapes refused because the template bound was reached.",
                c.templates_refused as f64,
            ),
            counter(
                "cluster_roots_refused_total",
                "New root errors refused because the cluster bound was reached.",
                c.roots_refused as f64,
            ),
            counter(
                "cluster_roots_evicted_total",
                "Root errors (with their templates) evicted to make room for new kinds at the cluster bound.",
                c.roots_evicted as f64,
            ),
            counter(
                "cluster_root_evicted_events_total",
                "Events of evicted root errors, gone from every cluster count.",
                c.root_evicted_events as f64,
            ),
            counter(
                "cluster_messages_truncated_total",
                "Error messages cut to the maximum message length before clustering.",
                c.truncated as f64,
            ),
            counter(
                "cluster_blank_messages_total",
                "Blank error messages ignored by the clustering engine.",
                c.blank as f64,
            ),
            counter(
                "templates",
                "Message templates known to the clustering engine.",
                templates as f64,
            ),
            counter(
                "clusters",
                "Error patterns (clusters) known to the clustering engine.",
                clusters as f64,
            ),
        ];
        out.extend((self.pipeline_counters)());
        out
    }
}

fn counter(name: &str, help: &str, value: f64) -> StoreCounter {
    StoreCounter {
        name: name.to_owned(),
        help: help.to_owned(),
        value,
    }
}

/// A cluster id as the API shows it (16 hex digits), `None` for anything else.
fn parse_cluster_id(id: &str) -> Option<ClusterId> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(id, 16).ok().map(ClusterId)
}

/// One list row from the engine's summary and the cluster's per-minute counts (minute start in
/// Unix seconds, count).
///
/// `canonical_template` is the engine's display name of the pattern (its most informative
/// template with typed placeholders), the same text the dashboard and `/metrics` show; the id
/// is a hash of the canonical root, which display changes never touch.
fn summary_row(s: &EngineSummary, per_minute: &[(i64, u64)], now_nanos: i64) -> ClusterSummary {
    let now_min = now_nanos.div_euclid(NANOS_PER_MIN);
    let by_minute: BTreeMap<i64, u64> = per_minute
        .iter()
        .map(|&(secs, count)| (secs.div_euclid(60), count))
        .collect();
    // The engine's count of the last 60 s: the current rate, not a 5-minute average.
    let rate_per_minute = s.last_minute_count as f64;
    ClusterSummary {
        id: s.id.to_string(),
        canonical_template: s.name.clone(),
        services: s.services.clone(),
        first_seen_unix_ms: s.first_seen_unix_nanos.div_euclid(NANOS_PER_MS),
        last_seen_unix_ms: s.last_seen_unix_nanos.div_euclid(NANOS_PER_MS),
        total_count: s.count,
        rate_per_minute,
        template_count: s.templates as u64,
        emergence: s
            .emergence
            .as_ref()
            .map(|e| emergence(e, s.first_seen_unix_nanos, &by_minute, now_nanos)),
        sparkline: minute_counts(&by_minute, now_min - SPARKLINE_MINUTES + 1, now_min),
        culprit: None,
    }
}

/// The engine's verdict with a sentence built from its figures.
///
/// The engine does not say when a surge began: `since_unix_ms` is then dated by the diagnosis
/// ([`surge_start_minute`]: the first minute of the engine's window above the baseline rate).
/// For a new pattern it is the first occurrence.
fn emergence(
    e: &EngineEmergence,
    first_seen_nanos: i64,
    by_minute: &BTreeMap<i64, u64>,
    now_nanos: i64,
) -> Emergence {
    // A verdict restored from before the engine reported its window has none.
    let window_min = if e.window_min > 0.0 {
        e.window_min.round().max(1.0) as i64
    } else {
        RATE_WINDOW_MINUTES
    };
    let now_min = now_nanos.div_euclid(NANOS_PER_MIN);
    let window_start = now_min - window_min + 1;
    let (kind, reason, since_unix_ms) = match e.kind {
        EngineKind::New => {
            let ago = now_nanos.saturating_sub(first_seen_nanos).max(0) / NANOS_PER_MIN;
            (
                EmergenceKind::New,
                format!(
                    "new: {} events in the last {window_min} min, first seen {}",
                    e.current_count,
                    if ago == 0 {
                        "less than a minute ago".to_owned()
                    } else {
                        format!("{ago} min ago")
                    }
                ),
                first_seen_nanos.div_euclid(NANOS_PER_MS),
            )
        }
        EngineKind::Surge => {
            let onset =
                surge_start_minute(by_minute, window_start, now_min, e.baseline_rate_per_min);
            (
                EmergenceKind::Surge,
                format!(
                    "surge: {:.1}/min vs {:.1}/min baseline (p={:.0e})",
                    e.current_rate_per_min, e.baseline_rate_per_min, e.p_value
                ),
                onset * MS_PER_MIN,
            )
        }
    };
    Emergence {
        kind,
        reason,
        score: e.score,
        since_unix_ms,
    }
}

/// Counts of minutes `from..=to` (minute numbers since the epoch), zeros where none were seen.
fn minute_counts(by_minute: &BTreeMap<i64, u64>, from: i64, to: i64) -> MinuteCounts {
    let counts = (from..=to)
        .map(|m| by_minute.get(&m).copied().unwrap_or(0))
        .collect();
    MinuteCounts {
        start_unix_ms: from.saturating_mul(MS_PER_MIN),
        counts,
    }
}

/// The detail's per-minute counts: from the first minute the engine still holds to now (or to
/// the last counted minute, when now is more than a day later, e.g. a replay of old files),
/// at most [`MAX_DETAIL_MINUTES`] long.
fn detail_minutes(per_minute: &[(i64, u64)], now_nanos: i64) -> MinuteCounts {
    let now_min = now_nanos.div_euclid(NANOS_PER_MIN);
    let by_minute: BTreeMap<i64, u64> = per_minute
        .iter()
        .map(|&(secs, count)| (secs.div_euclid(60), count))
        .collect();
    let (Some((&first, _)), Some((&last, _))) =
        (by_minute.first_key_value(), by_minute.last_key_value())
    else {
        return MinuteCounts {
            start_unix_ms: now_min.saturating_mul(MS_PER_MIN),
            counts: Vec::new(),
        };
    };
    let end = if now_min >= last && now_min - first < MAX_DETAIL_MINUTES {
        now_min
    } else {
        last
    };
    let start = first.max(end - MAX_DETAIL_MINUTES + 1);
    minute_counts(&by_minute, start, end)
}

/// A template of a cluster, with the services that wrote it (most reports first).
fn template_row(t: &faultline_clustering::TemplateSummary) -> TemplateRow {
    TemplateRow {
        id: t.id.to_string(),
        template: t.text.clone(),
        count: t.count,
        services: t.services.iter().map(|(s, _)| s.clone()).collect(),
        first_seen_unix_ms: t.first_seen_unix_nanos.div_euclid(NANOS_PER_MS),
        last_seen_unix_ms: t.last_seen_unix_nanos.div_euclid(NANOS_PER_MS),
    }
}

/// The engine's most frequent masked values, as one distribution.
///
/// The engine keeps the values of all masked parameters of a cluster in one table, without
/// their position, and masks every value as `<*>`; so there is one distribution, named
/// `<*> (any position)`. `other_count` is every value counted (`values_total`) minus those
/// listed.
fn parameters(top_values: &[(String, u64)], values_total: u64) -> Vec<ParameterDistribution> {
    if top_values.is_empty() {
        return Vec::new();
    }
    vec![ParameterDistribution {
        name: format!("{} (any position)", faultline_clustering::mask::WILDCARD),
        top: top_values
            .iter()
            .map(|(value, count)| ValueCount {
                value: value.clone(),
                count: *count,
            })
            .collect(),
        other_count: values_total.saturating_sub(top_values.iter().map(|(_, c)| c).sum()),
    }]
}

// ---------------------------------------------------------------------------------------------
// Diagnosis
// ---------------------------------------------------------------------------------------------

/// [`DiagnosisView`] over the engine and the counter store: builds the diagnosis' inputs
/// (a pattern's activity, the counters' per-sample history under their series keys) and asks
/// `faultline-diagnosis` for the answer.
struct DiagnosisAdapter {
    engine: Arc<Engine>,
    counters: Arc<CounterStore>,
    clock: Clock,
}

impl DiagnosisAdapter {
    /// The activity of one pattern as the engine knows it now.
    fn activity(&self, id: &str) -> Option<PatternActivity> {
        let cluster = parse_cluster_id(id)?;
        let now = (self.clock)();
        let detail = self.engine.cluster(cluster, now)?;
        let row = summary_row(&detail.summary, &detail.per_minute, now);
        Some(PatternActivity {
            id: row.id,
            first_seen_unix_ms: row.first_seen_unix_ms,
            emerging: row.emergence.map(|e| Emerging {
                kind: match e.kind {
                    EmergenceKind::New => EmergingKind::New,
                    EmergenceKind::Surge => EmergingKind::Surge,
                },
                since_unix_ms: e.since_unix_ms,
            }),
            per_minute: detail_minutes(&detail.per_minute, now),
            per_second: Some(SecondCounts::from_sparse(
                &detail.per_second,
                SECOND_HISTORY,
            )),
        })
    }
}

impl DiagnosisView for DiagnosisAdapter {
    fn moved(&self, id: &str) -> Option<MovedWithIt> {
        let activity = self.activity(id)?;
        let counters = counter_history(&self.counters.snapshot(&SnapshotOptions::default()));
        Some(what_moved(&activity, &counters))
    }
}

/// The store's per-sample history as the diagnosis reads it: every series under its key, on
/// the same regular axis as the counters document at per-second resolution.
fn counter_history(s: &StoreSnapshot) -> CounterHistory {
    let Some(h) = &s.history else {
        return CounterHistory::default();
    };
    let step_ms = i64::try_from(s.interval_ms).unwrap_or(i64::MAX).max(1);
    let (start_unix_ms, samples) = regular_axis(&h.seconds.times_unix_ms, step_ms);
    let series = h
        .seconds
        .series
        .iter()
        .map(|(key, values)| CounterSeries {
            key: key.clone(),
            points: samples
                .iter()
                .map(|at| Some(f64::from(values.get((*at)?).copied().flatten()?)))
                .collect(),
        })
        .collect();
    CounterHistory {
        start_unix_ms,
        step_ms,
        series,
    }
}

// ---------------------------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------------------------

/// [`TraceView`] over the trace store.
struct TraceAdapter {
    store: Arc<TraceStore>,
}

impl TraceView for TraceAdapter {
    fn call_chain(&self, trace_id: &str) -> Option<CallChain> {
        let id: TraceId = trace_id.parse().ok()?;
        let chain = self.store.call_chain(id)?;
        let mut doc = call_chain(&chain);
        doc.culprit = culprits::of_trace(&chain, &culprits::listeners(&self.store));
        Some(doc)
    }

    fn find(&self, query: &TraceQuery) -> Vec<TraceSummary> {
        let rows = self.store.list(&TraceFilter {
            cluster: query.cluster.clone(),
            service: query.service.clone(),
            errors_only: query.errors_only,
            limit: Some(query.limit.max(1)),
        });
        rows.iter()
            .map(|row| {
                // The list row only says whether something failed; the count needs the chain,
                // built only for traces with an error. A trace evicted meanwhile counts as
                // the one error the row reported.
                let error_count = if row.error {
                    self.store
                        .call_chain(row.trace_id)
                        .map_or(1, |chain| error_count(&chain).max(1))
                } else {
                    0
                };
                trace_summary(row, error_count)
            })
            .collect()
    }

    fn store_counters(&self) -> Vec<StoreCounter> {
        let s = self.store.stats();
        vec![
            counter("traces", "Traces held by the trace store.", s.traces as f64),
            counter(
                "trace_spans",
                "Spans held by the trace store.",
                s.spans as f64,
            ),
            counter(
                "trace_logs",
                "Log records held by the trace store.",
                s.logs as f64,
            ),
            counter(
                "traces_evicted_total",
                "Traces evicted because the trace bound was reached.",
                s.evicted_traces as f64,
            ),
            counter(
                "traces_expired_total",
                "Traces expired after the retention time without a new span or log.",
                s.expired_traces as f64,
            ),
            counter(
                "trace_spans_refused_total",
                "Spans refused because their trace held the most spans allowed.",
                s.refused_spans as f64,
            ),
            counter(
                "trace_logs_dropped_total",
                "Log records dropped because their trace held the most logs allowed.",
                s.dropped_logs as f64,
            ),
        ]
    }
}

/// Failed spans plus error logs (placed or not) of a chain.
fn error_count(chain: &StoreChain) -> u64 {
    let mut count = chain
        .unplaced_logs
        .iter()
        .filter(|l| l.is_errorish())
        .count() as u64;
    let mut stack: Vec<&ChainNode> = chain.roots.iter().collect();
    while let Some(node) = stack.pop() {
        count += u64::from(node.failed);
        count += node.logs.iter().filter(|l| l.is_errorish()).count() as u64;
        stack.extend(node.children.iter());
    }
    count
}

/// A trace list row. A trace of logs only has no root span: its root service and name are
/// empty.
fn trace_summary(row: &StoreTraceSummary, error_count: u64) -> TraceSummary {
    TraceSummary {
        trace_id: row.trace_id.to_string(),
        root_service: row.root_service.clone().unwrap_or_default(),
        root_name: row.root_operation.clone().unwrap_or_default(),
        start_unix_us: row.start_unix_nanos.div_euclid(NANOS_PER_US),
        duration_us: row.duration_nanos.div_euclid(NANOS_PER_US),
        span_count: row.span_count as u64,
        error_count,
        services: row.services.clone(),
        cluster_ids: row.cluster_ids.clone(),
    }
}

/// The chain as the web model wants it: spans depth first (each parent before its children,
/// siblings by start time), the store's extra roots (orphans, then subtrees cut for depth or
/// cycles) after the real root, each at depth 0 without a parent.
fn call_chain(chain: &StoreChain) -> CallChain {
    let mut spans = Vec::with_capacity(chain.span_count);
    // An explicit stack: the store bounds the depth, but nothing here relies on it.
    let mut stack: Vec<(&ChainNode, u32, Option<String>)> = chain
        .roots
        .iter()
        .rev()
        .map(|root| (root, 0, None))
        .collect();
    while let Some((node, depth, parent)) = stack.pop() {
        let id = node.span.span_id.to_string();
        for child in node.children.iter().rev() {
            stack.push((child, depth.saturating_add(1), Some(id.clone())));
        }
        spans.push(chain_span(node, id, depth, parent));
    }
    CallChain {
        trace_id: chain.trace_id.to_string(),
        spans,
        error_origin_span_id: chain.error_origin.as_ref().map(|o| o.span_id.to_string()),
        unattached_logs: chain.unplaced_logs.iter().map(chain_log).collect(),
        cluster_ids: chain.cluster_ids.clone(),
        culprit: None,
    }
}

/// One span. Its start is the store's clock-skew-corrected start, so that a child of another
/// service sits inside its parent in the waterfall; the applied shift, the store's orphan and
/// detached flags, the span's cluster ids and its events are shown as `faultline.*` and
/// `event.*` attributes after the span's own.
fn chain_span(node: &ChainNode, span_id: String, depth: u32, parent: Option<String>) -> ChainSpan {
    let span = &node.span;
    let mut attributes: Vec<Attribute> = span
        .attributes
        .iter()
        .map(|(key, value)| Attribute {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let mut extra = |key: &str, value: String| {
        attributes.push(Attribute {
            key: key.to_owned(),
            value,
        })
    };
    if node.clock_skew_nanos != 0 {
        extra(
            "faultline.clock_skew_us",
            (node.clock_skew_nanos / NANOS_PER_US).to_string(),
        );
    }
    if node.orphan {
        extra("faultline.orphan", "true".to_owned());
    }
    if node.detached {
        extra("faultline.detached", "true".to_owned());
    }
    if !node.cluster_ids.is_empty() {
        extra("faultline.cluster_ids", node.cluster_ids.join(","));
    }
    for event in &span.events {
        let value = event
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        extra(&format!("event.{}", event.name), value);
    }
    ChainSpan {
        span_id,
        parent_span_id: parent,
        depth,
        service: span.service.clone(),
        name: span.name.clone(),
        kind: span_kind(span.kind).to_owned(),
        start_unix_us: span
            .start_unix_nanos
            .saturating_add(node.clock_skew_nanos)
            .div_euclid(NANOS_PER_US),
        duration_us: node.duration_nanos / NANOS_PER_US,
        status: match span.status {
            StatusCode::Unset => SpanStatus::Unset,
            StatusCode::Ok => SpanStatus::Ok,
            StatusCode::Error => SpanStatus::Error,
        },
        status_message: (!span.status_message.is_empty()).then(|| span.status_message.clone()),
        attributes,
        logs: node.logs.iter().map(chain_log).collect(),
    }
}

fn span_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Unknown => "unknown",
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
        Level::Fatal => "fatal",
        Level::Panic => "panic",
    }
}

/// A log record under a span. The message is the record's message, followed by its separate
/// error field when it has one (`msg: error`, as Go wraps errors). The store does not keep
/// which cluster a record went to: `cluster_id` is read from the [`CLUSTER_ID_ATTRIBUTE`]
/// attribute when the pipeline set it (and it is a well-formed id), else `None`.
fn chain_log(record: &LogRecord) -> ChainLog {
    let message = match &record.error {
        Some(error) if !record.message.contains(error.as_str()) => {
            if record.message.is_empty() {
                error.clone()
            } else {
                format!("{}: {error}", record.message)
            }
        }
        _ => record.message.clone(),
    };
    ChainLog {
        time_unix_us: record
            .time_unix_nanos
            .unwrap_or(record.observed_unix_nanos)
            .div_euclid(NANOS_PER_US),
        service: record.service.clone().unwrap_or_default(),
        level: level_name(record.level).to_owned(),
        message,
        cluster_id: record
            .attributes
            .iter()
            .find(|(key, _)| key == CLUSTER_ID_ATTRIBUTE)
            .map(|(_, value)| value)
            .filter(|v| {
                v.len() == 16
                    && v.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .cloned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// [`CounterView`] over the counter store.
struct CounterAdapter {
    store: Arc<CounterStore>,
}

impl CounterView for CounterAdapter {
    fn snapshot_at_resolution(&self, resolution: HistoryResolution) -> CountersSnapshot {
        counters_snapshot(
            &self.store.snapshot(&SnapshotOptions::default()),
            resolution,
        )
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

/// How far back a series' `delta_1m` reaches, in milliseconds.
const DELTA_WINDOW_MS: i64 = 60_000;

/// The history of a snapshot laid on one regular time axis, plus the two per-sample points
/// every series' change over the last minute is taken between.
struct Axis<'a> {
    /// For each axis point, the index of the store's point (in `series`) placed there.
    samples: Vec<Option<usize>>,
    /// The store's series at the chosen resolution.
    series: &'a BTreeMap<SeriesKey, Vec<Option<f32>>>,
    /// The store's per-sample series, which deltas are read from whatever the resolution.
    per_sample: &'a BTreeMap<SeriesKey, Vec<Option<f32>>>,
    /// Indexes in `per_sample` of the newest sample at least [`DELTA_WINDOW_MS`] before the
    /// latest, and of the latest; `None` while the history is shorter than that.
    delta_between: Option<(usize, usize)>,
}

impl Axis<'_> {
    /// The points of one store series on the axis (all gaps when the store has no such
    /// series) and its change over the last minute.
    fn series(&self, key: &SeriesKey) -> Series {
        let values = self.series.get(key);
        Series {
            points: self
                .samples
                .iter()
                .map(|at| {
                    let v = values?.get((*at)?).copied().flatten()?;
                    Some(f64::from(v))
                })
                .collect(),
            delta_1m: self.delta_1m(key),
        }
    }

    fn delta_1m(&self, key: &SeriesKey) -> Option<f64> {
        let (from, to) = self.delta_between?;
        let values = self.per_sample.get(key)?;
        let at = |i: usize| values.get(i).copied().flatten().map(f64::from);
        Some(at(to)? - at(from)?)
    }

    fn has(&self, key: &SeriesKey) -> bool {
        self.series.contains_key(key)
    }
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

/// Lays sample times on a regular axis of `step_ms` ending at the last sample: each sample
/// goes to the nearest axis point (a later sample wins a shared point, a missed tick stays a
/// gap). The axis is at most a few times longer than the number of samples, so a clock jump
/// cannot make it huge; older samples that do not fit are left out. Returns the axis start
/// and the sample index of each point.
fn regular_axis(times: &[i64], step_ms: i64) -> (i64, Vec<Option<usize>>) {
    let step = step_ms.max(1);
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return (0, Vec::new());
    };
    let cap = (times.len().saturating_mul(4)).clamp(64, 100_000) as i64;
    let span = (last.saturating_sub(first).max(0) + step / 2) / step + 1;
    let len = span.min(cap);
    let mut axis = vec![None; len as usize];
    for (i, &t) in times.iter().enumerate() {
        let back = (last.saturating_sub(t).max(0) + step / 2) / step;
        if back < len {
            axis[(len - 1 - back) as usize] = Some(i);
        }
    }
    (last - (len - 1) * step, axis)
}

/// The indexes of the newest sample taken at least [`DELTA_WINDOW_MS`] before the latest one,
/// and of the latest one.
fn delta_between(times: &[i64]) -> Option<(usize, usize)> {
    let latest = times.len().checked_sub(1)?;
    let cutoff = times[latest].checked_sub(DELTA_WINDOW_MS)?;
    let from = times.iter().rposition(|&t| t <= cutoff)?;
    Some((from, latest))
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
/// now or with history), inbound groups as [`PortSide::Local`], outbound as
/// [`PortSide::Remote`], then the groups that left the top ports during the window (see
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
    let interval_ms = i64::try_from(s.interval_ms).unwrap_or(i64::MAX).max(1);
    let empty = BTreeMap::new();
    let (per_sample_times, per_sample) = match &s.history {
        Some(h) => (h.seconds.times_unix_ms.as_slice(), &h.seconds.series),
        None => (&[][..], &empty),
    };
    let (step_ms, times, series) = match (resolution, &s.history) {
        (HistoryResolution::Minute, Some(h)) => (
            60_000,
            h.minutes.times_unix_ms.as_slice(),
            &h.minutes.series,
        ),
        (HistoryResolution::Minute, None) => (60_000, &[][..], &empty),
        (HistoryResolution::Second, _) => (interval_ms, per_sample_times, per_sample),
    };
    let (history_start_unix_ms, samples) = regular_axis(times, step_ms);
    let axis = Axis {
        samples,
        series,
        per_sample,
        delta_between: delta_between(per_sample_times),
    };

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
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use faultline_clustering::{ClusteringConfig, ErrorEvent};
    use faultline_ingest::counters::process::ProcessCounters;
    use faultline_ingest::counters::reader::CensusReading;
    use faultline_ingest::counters::sockets::{Family, SocketSource};
    use faultline_ingest::counters::store::{NodeSample, TaskScrape};
    use faultline_ingest::counters::{
        CounterError, CountersConfig, SocketCensus, SocketEntry, SocketState as S,
    };
    use faultline_ingest::traces::{Span, SpanEvent, TraceStoreConfig};
    use faultline_ingest::{Origin, SpanId};

    use super::*;
    use faultline_series::PortSide;

    const MIN: i64 = NANOS_PER_MIN;
    /// 2023-11-14T22:13:00Z plus 30 s, in Unix nanoseconds: mid-minute, so minute buckets are
    /// unambiguous.
    const NOW: i64 = 1_700_000_000 / 60 * 60 * 1_000_000_000 + 30_000_000_000;

    fn trace_id(n: u8) -> TraceId {
        TraceId([
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0, 0, 0, n,
        ])
    }

    fn span_id(n: u8) -> SpanId {
        SpanId([0xa1, 0, 0, 0, 0, 0, 0, n])
    }

    struct Stores {
        engine: Arc<Engine>,
        traces: Arc<TraceStore>,
        counters: Arc<CounterStore>,
    }

    fn stores() -> Stores {
        Stores {
            engine: Arc::new(Engine::new(ClusteringConfig::default())),
            traces: Arc::new(TraceStore::new(TraceStoreConfig::default())),
            counters: Arc::new(CounterStore::new(&CountersConfig::default())),
        }
    }

    fn views_at(stores: &Stores, now: i64) -> Views {
        let pipeline: PipelineCounters = Arc::new(|| {
            vec![StoreCounter {
                name: "pipeline_records_dropped_total".into(),
                help: "Records dropped by the pipeline.".into(),
                value: 3.0,
            }]
        });
        build_with_clock(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
            LiveUpdates::new(),
            pipeline,
            Arc::new(move || now),
        )
    }

    fn error_event<'a>(
        text: &'a str,
        service: &'a str,
        trace: Option<&'a str>,
        t: i64,
    ) -> ErrorEvent<'a> {
        ErrorEvent {
            text,
            service: Some(service),
            severity: "error",
            trace_id: trace,
            span_id: None,
            time_unix_nanos: t,
        }
    }

    /// Six connection resets from two services in the last three minutes, two with a trace id
    /// (one written in upper case by its sender), and one older EOF.
    fn reset_storm(engine: &Engine) -> Vec<String> {
        let traces = [
            Some("4BF92F3577B34DA6A3CE929D0E0E4736"),
            None,
            None,
            Some("00f067aa0ba902b700f067aa0ba902b7"),
            None,
            None,
        ];
        let mut messages = Vec::new();
        for (i, trace) in traces.iter().enumerate() {
            let text = format!(
                "read tcp 10.0.0.{i}:5432->10.0.1.9:{}: read: connection reset by peer",
                40_000 + i
            );
            let service = if i % 2 == 0 { "user-svc" } else { "order-svc" };
            let t = NOW - 3 * MIN + i as i64 * 20_000_000_000;
            engine.observe(&error_event(&text, service, *trace, t));
            messages.push(text);
        }
        engine.observe(&error_event(
            "GetUser(42): unexpected EOF",
            "user-svc",
            None,
            NOW - 40 * MIN,
        ));
        engine.maintain();
        messages
    }

    #[test]
    fn per_second_counts_are_dense_from_the_first_second_held() {
        let stores = stores();
        reset_storm(&stores.engine);
        let views = views_at(&stores, NOW);
        let id = views
            .clusters
            .summaries()
            .iter()
            .find(|r| r.canonical_template.ends_with("connection reset by peer"))
            .map(|r| r.id.clone())
            .expect("a row for the resets");
        let diagnosis = DiagnosisAdapter {
            engine: Arc::clone(&stores.engine),
            counters: Arc::clone(&stores.counters),
            clock: Arc::new(|| NOW),
        };
        let activity = diagnosis.activity(&id).expect("known cluster");
        let seconds = activity.per_second.expect("per-second counts");
        // Six resets 20 s apart from NOW - 3 min: one second each, zeros between.
        let first_ms = (NOW - 3 * MIN) / NANOS_PER_MS;
        assert_eq!(seconds.start_unix_ms, first_ms / 1000 * 1000);
        assert_eq!(seconds.counts.len(), 101);
        assert_eq!(seconds.counts.iter().sum::<u64>(), 6);
        assert_eq!(seconds.counts[0], 1);
        assert_eq!(seconds.counts[20], 1);
        assert!(diagnosis.activity("00000000000000ff").is_none());
        assert!(diagnosis.activity("not-an-id").is_none());
    }

    #[test]
    fn what_moved_is_answered_from_the_engine_and_the_counter_store() {
        let stores = stores();
        reset_storm(&stores.engine);
        // The counters: four minutes of samples a second apart up to NOW; TIME_WAIT on 8080
        // steps from 2 to 300 two seconds before the first reset (NOW - 3 min).
        let now_ms = NOW / NANOS_PER_MS;
        let onset_ms = (NOW - 3 * MIN) / NANOS_PER_MS;
        let t0 = now_ms - 240_000;
        for i in 0..=240 {
            let t = t0 + i * 1_000;
            let time_wait = if t < onset_ms - 2_000 { 2 } else { 300 };
            stores.counters.record_sample(sample(t, time_wait, 0, 100));
        }
        let views = views_at(&stores, NOW);
        let id = views
            .clusters
            .summaries()
            .iter()
            .find(|r| r.canonical_template.ends_with("connection reset by peer"))
            .map(|r| r.id.clone())
            .expect("a row for the resets");
        let doc = views.diagnosis.moved(&id).expect("known cluster");
        assert_eq!(doc.cluster_id, id);
        assert_eq!(doc.onset_unix_ms, onset_ms, "{}", doc.summary);
        let top = doc.moved.first().unwrap_or_else(|| panic!("{doc:#?}"));
        assert_eq!(top.label, "TIME-WAIT :8080");
        assert_eq!(
            top.key,
            SeriesKey::PortState {
                port: 8080,
                side: PortSide::Local,
                state: SocketState::TimeWait,
            }
        );
        assert_eq!(top.lead_ms, -2_000);
        assert!(views.diagnosis.moved("00000000000000ff").is_none());
    }

    #[test]
    fn cluster_rows_show_counts_canonical_template_emergence_and_sparkline() {
        let stores = stores();
        reset_storm(&stores.engine);
        let views = views_at(&stores, NOW);
        let rows = views.clusters.summaries();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let reset = rows
            .iter()
            .find(|r| r.canonical_template.ends_with("connection reset by peer"))
            .expect("a row for the resets");
        assert_eq!(reset.total_count, 6);
        assert_eq!(reset.template_count, 1);
        assert_eq!(reset.services, ["order-svc", "user-svc"]);
        assert_eq!(reset.id.len(), 16);
        assert!(reset
            .id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(reset.first_seen_unix_ms, (NOW - 3 * MIN) / NANOS_PER_MS);
        assert_eq!(
            reset.last_seen_unix_ms,
            (NOW - 3 * MIN + 100_000_000_000) / NANOS_PER_MS
        );
        // Sparkline: the last hour, minute by minute, ending with the current minute.
        let now_minute_ms = NOW / NANOS_PER_MS / MS_PER_MIN * MS_PER_MIN;
        assert_eq!(reset.sparkline.counts.len(), 60);
        assert_eq!(
            reset.sparkline.start_unix_ms,
            now_minute_ms - 59 * MS_PER_MIN
        );
        assert_eq!(reset.sparkline.counts.iter().sum::<u64>(), 6);
        assert_eq!(reset.sparkline.counts[56..], [2, 3, 1, 0]);
        // Six events first seen three minutes ago: new, at 6 events / 5 min.
        let e = reset.emergence.as_ref().expect("a new pattern");
        assert_eq!(e.kind, EmergenceKind::New);
        assert_eq!(
            e.reason,
            "new: 6 events in the last 5 min, first seen 3 min ago"
        );
        assert_eq!(e.since_unix_ms, reset.first_seen_unix_ms);
        assert!(e.score > 0.0);
        // The current rate: the last reset was 80 s ago, so none in the last minute (a
        // 5-minute average would say 1.2/min while the storm is over).
        assert_eq!(reset.rate_per_minute, 0.0);

        let eof = rows
            .iter()
            .find(|r| r.canonical_template.contains("EOF"))
            .expect("a row for the EOF");
        assert_eq!(eof.total_count, 1);
        assert!(eof.emergence.is_none());
        assert_eq!(eof.rate_per_minute, 0.0);
        assert_eq!(eof.sparkline.counts[19], 1);
    }

    #[test]
    fn cluster_detail_shows_templates_samples_values_and_trace_ids() {
        let stores = stores();
        let messages = reset_storm(&stores.engine);
        // The pipeline tagged one more trace with the cluster in the trace store.
        let id = stores
            .engine
            .observe(&error_event(&messages[0], "user-svc", None, NOW - 3 * MIN))
            .cluster
            .expect("clustered")
            .to_string();
        stores.traces.insert_spans(vec![span(
            9,
            1,
            None,
            "user-svc",
            "GET /users/:id",
            (NOW - 2 * MIN, NOW - 2 * MIN + 1_000_000),
            StatusCode::Error,
        )]);
        stores.traces.tag_cluster(trace_id(9), None, &id);

        let views = views_at(&stores, NOW);
        let detail = views.clusters.detail(&id).expect("known cluster");
        assert_eq!(detail.summary.id, id);
        assert_eq!(detail.summary.total_count, 7);
        assert_eq!(detail.templates.len(), 1);
        assert_eq!(
            detail.templates[0].template,
            "read tcp <ip:port>-><ip:port>: read: connection reset by peer"
        );
        assert_eq!(
            detail.summary.canonical_template,
            detail.templates[0].template
        );
        assert_eq!(detail.templates[0].count, 7);
        assert_eq!(detail.templates[0].services, ["user-svc", "order-svc"]);
        // Samples newest first, level known because the cluster only ever saw "error".
        assert!(!detail.samples.is_empty());
        assert_eq!(detail.samples[0].message, messages[5]);
        assert!(detail
            .samples
            .windows(2)
            .all(|w| w[0].time_unix_ms >= w[1].time_unix_ms));
        assert!(detail.samples.iter().all(|s| s.level == "error"));
        let sampled = detail
            .samples
            .iter()
            .find(|s| s.message == messages[3])
            .expect("sample 3 kept");
        assert_eq!(
            sampled.trace_id.as_deref(),
            Some("00f067aa0ba902b700f067aa0ba902b7")
        );
        assert_eq!(sampled.service, "order-svc");
        // Trace ids: the tagged trace (started 2 min ago) and the sampled ones, newest first,
        // lower case.
        assert_eq!(detail.trace_ids[0], "00f067aa0ba902b700f067aa0ba902b7");
        assert_eq!(detail.trace_ids[1], trace_id(9).to_string());
        // The first reset's sample (and its trace id) was pushed out by later ones.
        assert_eq!(detail.trace_ids.len(), 2, "{:?}", detail.trace_ids);
        // Parameter values: the masked addresses (each side of `->` is a value of its own).
        let values = &detail.parameters[0];
        assert_eq!(values.name, "<*> (any position)");
        let first = values
            .top
            .iter()
            .find(|v| v.value == "10.0.0.0:5432")
            .expect("value counted");
        assert_eq!(first.count, 2);
        // Per minute: from the first minute to now.
        assert_eq!(detail.per_minute.counts, [3, 3, 1, 0]);
        assert_eq!(
            detail.per_minute.start_unix_ms,
            (NOW - 3 * MIN).div_euclid(MIN) * MS_PER_MIN
        );

        assert!(views.clusters.detail("0000000000000000").is_none());
        assert!(views.clusters.detail("not-an-id").is_none());
        assert!(views.clusters.detail("+00000000000001").is_none());
    }

    #[test]
    fn a_surge_says_how_far_above_its_baseline_it_is() {
        let stores = stores();
        let now_min = NOW.div_euclid(MIN);
        // One a minute for an hour, then forty in the last minute.
        for m in (now_min - 64)..=(now_min - 5) {
            stores.engine.observe(&error_event(
                "dial tcp 10.0.0.7:6379: connect: connection refused",
                "cart-svc",
                None,
                m * MIN + 1,
            ));
        }
        for i in 0..40 {
            stores.engine.observe(&error_event(
                "dial tcp 10.0.0.7:6379: connect: connection refused",
                "cart-svc",
                None,
                (now_min - 1) * MIN + i,
            ));
        }
        let views = views_at(&stores, NOW);
        let rows = views.clusters.summaries();
        let e = rows[0].emergence.as_ref().expect("a surge");
        assert_eq!(e.kind, EmergenceKind::Surge);
        assert!(
            e.reason
                .starts_with("surge: 8.0/min vs 1.0/min baseline (p="),
            "{}",
            e.reason
        );
        assert_eq!(e.since_unix_ms, (now_min - 1) * MS_PER_MIN);
        // The 40 were 60 to 90 s ago: the current rate (last 60 s) is already back to 0.
        assert_eq!(rows[0].rate_per_minute, 0.0);
    }

    #[test]
    fn rows_are_cached_and_rebuilt_when_the_engine_moved() {
        let stores = stores();
        reset_storm(&stores.engine);
        let pipeline: PipelineCounters = Arc::new(Vec::new);
        let clock: Clock = Arc::new(|| NOW);
        let slow = ClusterAdapter::new(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&pipeline),
            Arc::clone(&clock),
            Duration::from_secs(3600),
        );
        let eager = ClusterAdapter::new(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            pipeline,
            clock,
            Duration::ZERO,
        );
        let before = slow.summaries();
        assert!(Arc::ptr_eq(&before, &slow.summaries()));
        let idle = eager.summaries();
        assert!(Arc::ptr_eq(&idle, &eager.summaries()), "nothing moved");

        stores.engine.observe(&error_event(
            "write tcp 10.0.0.1:8080->10.0.0.2:5000: write: broken pipe",
            "user-svc",
            None,
            NOW - MIN,
        ));
        assert_eq!(slow.summaries().len(), 2, "within the refresh interval");
        let after = eager.summaries();
        assert_eq!(after.len(), 3);
        assert!(after
            .iter()
            .any(|r| r.canonical_template.ends_with("broken pipe")));
    }

    #[test]
    fn store_counters_include_the_engine_and_the_pipeline() {
        let stores = stores();
        reset_storm(&stores.engine);
        stores
            .engine
            .observe(&error_event("   ", "user-svc", None, NOW));
        let views = views_at(&stores, NOW);
        let counters = views.clusters.store_counters();
        let value = |name: &str| {
            counters
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.value)
                .unwrap_or_else(|| panic!("{name} missing from {counters:?}"))
        };
        assert_eq!(value("cluster_events_total"), 8.0);
        assert_eq!(value("cluster_blank_messages_total"), 1.0);
        assert_eq!(value("clusters"), 2.0);
        assert_eq!(value("templates"), 2.0);
        assert_eq!(value("cluster_other_events_total"), 0.0);
        assert_eq!(value("pipeline_records_dropped_total"), 3.0);
        let all = counters
            .iter()
            .chain(views.traces.store_counters().iter())
            .map(|c| c.name.clone())
            .collect::<Vec<_>>();
        for name in &all {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "names collide: {all:?}");
    }

    fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        name: &str,
        (start, end): (i64, i64),
        status: StatusCode,
    ) -> Span {
        Span {
            trace_id: trace_id(trace),
            span_id: span_id(id),
            parent_span_id: parent.map(span_id),
            service: service.into(),
            name: name.into(),
            kind: if parent.is_none() {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start_unix_nanos: start,
            end_unix_nanos: end,
            status,
            status_message: if status == StatusCode::Error {
                "read: connection reset by peer".into()
            } else {
                String::new()
            },
            attributes: vec![("http.route".into(), name.into())],
            events: Vec::new(),
        }
    }

    fn log(
        trace: u8,
        span: Option<u8>,
        level: Level,
        message: &str,
        error: Option<&str>,
        t: i64,
    ) -> LogRecord {
        LogRecord {
            time_unix_nanos: Some(t),
            observed_unix_nanos: t + 5,
            level,
            service: Some("user-svc".into()),
            message: message.into(),
            error: error.map(str::to_owned),
            http_status: None,
            trace_id: Some(trace_id(trace)),
            span_id: span.map(span_id),
            attributes: Vec::new(),
            origin: Origin::OtlpLog,
            truncated: false,
        }
    }

    /// A gateway call to user-svc whose database query failed with a reset, arriving innermost
    /// first, with an error log under the query, an info log naming an unknown span, and a
    /// healthy second trace.
    fn failing_trace(stores: &Stores, cluster: &str) {
        let t = NOW - MIN;
        let ms = 1_000_000;
        let mut query = span(
            1,
            3,
            Some(2),
            "user-svc",
            "SELECT users",
            (t + 20 * ms, t + 25 * ms),
            StatusCode::Error,
        );
        query.events.push(SpanEvent {
            name: "exception".into(),
            time_unix_nanos: t + 25 * ms,
            attributes: vec![("exception.message".into(), "connection reset".into())],
        });
        stores.traces.insert_spans(vec![
            query,
            span(
                1,
                1,
                None,
                "api-gateway",
                "GET /users/:id",
                (t, t + 40 * ms),
                StatusCode::Unset,
            ),
            span(
                1,
                2,
                Some(1),
                "user-svc",
                "GET /users/:id",
                (t + 10 * ms, t + 30 * ms),
                StatusCode::Unset,
            ),
        ]);
        let mut error_log = log(
            1,
            Some(3),
            Level::Error,
            "query failed",
            Some("read tcp 10.0.0.5:41000->10.0.0.9:5432: read: connection reset by peer"),
            t + 24 * ms,
        );
        error_log
            .attributes
            .push((CLUSTER_ID_ATTRIBUTE.into(), cluster.into()));
        assert!(stores.traces.attach_log(error_log));
        assert!(stores.traces.attach_log(log(
            1,
            Some(77),
            Level::Info,
            "retrying",
            None,
            t + 35 * ms
        )));
        stores
            .traces
            .tag_cluster(trace_id(1), Some(span_id(3)), cluster);
        stores.traces.insert_spans(vec![span(
            2,
            1,
            None,
            "api-gateway",
            "GET /health",
            (t + 60 * ms, t + 61 * ms),
            StatusCode::Ok,
        )]);
    }

    #[test]
    fn call_chain_is_flattened_with_depth_origin_and_logs_under_their_span() {
        let stores = stores();
        failing_trace(&stores, "00c10575e5ed1234");
        let views = views_at(&stores, NOW);
        let chain = views
            .traces
            .call_chain(&trace_id(1).to_string())
            .expect("trace held");
        assert_eq!(chain.trace_id, "4bf92f3577b34da6a3ce929d00000001");
        let order: Vec<(&str, Option<&str>, u32)> = chain
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.parent_span_id.as_deref(), s.depth))
            .collect();
        assert_eq!(
            order,
            [
                ("a100000000000001", None, 0),
                ("a100000000000002", Some("a100000000000001"), 1),
                ("a100000000000003", Some("a100000000000002"), 2),
            ]
        );
        assert_eq!(
            chain.error_origin_span_id.as_deref(),
            Some("a100000000000003")
        );
        let root = &chain.spans[0];
        assert_eq!(root.kind, "server");
        assert_eq!(root.service, "api-gateway");
        assert_eq!(root.start_unix_us, (NOW - MIN) / 1_000);
        assert_eq!(root.duration_us, 40_000);
        assert!(root.logs.is_empty());
        let query = &chain.spans[2];
        assert_eq!(query.status, SpanStatus::Error);
        assert_eq!(
            query.status_message.as_deref(),
            Some("read: connection reset by peer")
        );
        assert_eq!(query.start_unix_us, (NOW - MIN) / 1_000 + 20_000);
        assert!(query.attributes.contains(&Attribute {
            key: "event.exception".into(),
            value: "exception.message=connection reset".into(),
        }));
        assert!(query.attributes.contains(&Attribute {
            key: "faultline.cluster_ids".into(),
            value: "00c10575e5ed1234".into(),
        }));
        assert_eq!(query.logs.len(), 1);
        let log = &query.logs[0];
        assert_eq!(log.level, "error");
        assert_eq!(
            log.message,
            "query failed: read tcp 10.0.0.5:41000->10.0.0.9:5432: read: connection reset by peer"
        );
        assert_eq!(log.time_unix_us, (NOW - MIN) / 1_000 + 24_000);
        assert_eq!(log.cluster_id.as_deref(), Some("00c10575e5ed1234"));
        assert_eq!(chain.unattached_logs.len(), 1);
        assert_eq!(chain.unattached_logs[0].message, "retrying");
        assert_eq!(chain.unattached_logs[0].cluster_id, None);
        assert_eq!(chain.cluster_ids, ["00c10575e5ed1234"]);

        assert!(views.traces.call_chain(&trace_id(3).to_string()).is_none());
        assert!(views.traces.call_chain("zz").is_none());
    }

    #[test]
    fn trace_list_counts_errors_and_filters() {
        let stores = stores();
        failing_trace(&stores, "00c10575e5ed1234");
        let views = views_at(&stores, NOW);
        let all = views.traces.find(&TraceQuery {
            limit: 10,
            ..TraceQuery::default()
        });
        assert_eq!(all.len(), 2);
        // Newest first: the health check started after the failing call.
        assert_eq!(all[0].root_name, "GET /health");
        assert_eq!(all[0].error_count, 0);
        let failing = &all[1];
        assert_eq!(failing.trace_id, trace_id(1).to_string());
        assert_eq!(failing.root_service, "api-gateway");
        assert_eq!(failing.root_name, "GET /users/:id");
        assert_eq!(failing.span_count, 3);
        // The failed query span and its error log.
        assert_eq!(failing.error_count, 2);
        assert_eq!(failing.start_unix_us, (NOW - MIN) / 1_000);
        assert_eq!(failing.duration_us, 40_000);
        assert_eq!(failing.services, ["api-gateway", "user-svc"]);
        assert_eq!(failing.cluster_ids, ["00c10575e5ed1234"]);

        let errors = views.traces.find(&TraceQuery {
            errors_only: true,
            limit: 10,
            ..TraceQuery::default()
        });
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].trace_id, failing.trace_id);
        let by_cluster = views.traces.find(&TraceQuery {
            cluster: Some("00c10575e5ed1234".into()),
            limit: 10,
            ..TraceQuery::default()
        });
        assert_eq!(by_cluster.len(), 1);
        assert_eq!(
            views
                .traces
                .find(&TraceQuery {
                    service: Some("user-svc".into()),
                    limit: 1,
                    ..TraceQuery::default()
                })
                .len(),
            1
        );

        let counters = views.traces.store_counters();
        let value = |name: &str| counters.iter().find(|c| c.name == name).map(|c| c.value);
        assert_eq!(value("traces"), Some(2.0));
        assert_eq!(value("trace_spans"), Some(4.0));
        assert_eq!(value("trace_logs"), Some(2.0));
        assert_eq!(value("traces_evicted_total"), Some(0.0));
    }

    fn socket(state: S, local: &str, remote: &str) -> SocketEntry {
        let parse = |a: &str| a.parse::<SocketAddr>().expect("test address");
        SocketEntry {
            family: Family::Ipv4,
            state,
            local: parse(local),
            remote: parse(remote),
            recv_queue: 0,
            send_queue: None,
            inode: 1,
        }
    }

    /// One sample: a server on 8080 with `time_wait` TIME_WAIT sockets and two established
    /// ones, and `close_wait` CLOSE_WAIT sockets towards a database on 5432.
    fn sample(t_ms: i64, time_wait: u16, close_wait: u16, resets: i64) -> NodeSample {
        let mut entries = vec![
            socket(S::Listen, "0.0.0.0:8080", "0.0.0.0:0"),
            socket(S::Established, "10.0.0.1:8080", "10.0.0.2:50001"),
            socket(S::Established, "10.0.0.1:8080", "10.0.0.2:50002"),
        ];
        for i in 0..time_wait {
            entries.push(socket(
                S::TimeWait,
                "10.0.0.1:8080",
                &format!("10.0.0.3:{}", 51000 + i),
            ));
        }
        for i in 0..close_wait {
            entries.push(socket(
                S::CloseWait,
                &format!("10.0.0.1:{}", 41000 + i),
                "10.0.0.9:5432",
            ));
        }
        let census = SocketCensus::from_entries(SocketSource::ProcNet, &entries, &(32768..=60999));
        let sockstat = BTreeMap::from([
            ("TCP inuse".to_string(), entries.len() as i64),
            ("TCP tw".to_string(), i64::from(time_wait)),
        ]);
        let protocol = BTreeMap::from([("Tcp EstabResets".to_string(), resets)]);
        NodeSample {
            time_unix_ms: t_ms,
            sockets: CensusReading {
                census: Ok(census),
                netlink_problem: None,
                budget_note: None,
            },
            sockstat: Ok(sockstat),
            protocol: Ok(protocol),
            processes: vec![
                (
                    "user-svc".into(),
                    Ok(ProcessCounters {
                        pids: vec![4242, 4243],
                        open_fds: 64 + u64::from(close_wait),
                        fd_limit: Some(1024),
                        threads: 18,
                        rss_bytes: 1 << 20,
                    }),
                ),
                (
                    "db-proxy".into(),
                    Err(CounterError::NoProcess("db-proxy".into())),
                ),
            ],
            agent_process: None,
            runtime: None,
            scrapes: vec![
                TaskScrape {
                    target: "user-svc".into(),
                    source: "pprof".into(),
                    result: Ok(400.0 + f64::from(close_wait) * 10.0),
                },
                TaskScrape {
                    target: "order-svc".into(),
                    source: "pprof".into(),
                    result: Err("connection refused".into()),
                },
            ],
        }
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

    #[test]
    fn empty_stores_give_empty_views_on_the_system_clock() {
        let stores = stores();
        let views = build(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
            LiveUpdates::new(),
            Arc::new(Vec::new),
        );
        let c = views.counters.snapshot();
        assert_eq!(c.sampled_at_unix_ms, 0);
        assert!(c.sockets.is_empty() && c.sockstat.is_empty() && c.tasks.is_empty());
        assert!(c.step_ms >= 1);
        assert!(views.clusters.summaries().is_empty());
        assert!(views
            .traces
            .find(&TraceQuery {
                limit: 5,
                ..TraceQuery::default()
            })
            .is_empty());
        // Events observed now are in the current minute of the system clock's sparkline.
        stores.engine.observe(&error_event(
            "EOF",
            "user-svc",
            None,
            system_now_unix_nanos(),
        ));
        let views = build(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
            LiveUpdates::new(),
            Arc::new(Vec::new),
        );
        let rows = views.clusters.summaries();
        assert_eq!(rows.len(), 1);
        let sparkline = &rows[0].sparkline.counts;
        // The minute may have turned between observing and reading.
        assert_eq!(sparkline[58..].iter().sum::<u64>(), 1, "{sparkline:?}");
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
        for i in 0..time_wait {
            entries.push(socket(
                S::TimeWait,
                "10.0.0.1:8080",
                &format!("10.0.0.3:{}", 51000 + i),
            ));
        }
        let census = SocketCensus::from_entries(SocketSource::Netlink, &entries, &(32768..=60999));
        NodeSample {
            time_unix_ms: t_ms,
            sockets: CensusReading {
                census: Ok(census),
                netlink_problem: None,
                budget_note: None,
            },
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

    fn stores_with(config: CountersConfig) -> Stores {
        Stores {
            counters: Arc::new(CounterStore::new(&config)),
            ..stores()
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
            budget_note: None,
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
    }

    #[test]
    fn the_change_over_a_minute_needs_a_sample_a_minute_old() {
        assert_eq!(delta_between(&[]), None);
        assert_eq!(delta_between(&[0, 30_000, 59_999]), None);
        assert_eq!(delta_between(&[0, 30_000, 60_000]), Some((0, 2)));
        assert_eq!(delta_between(&[0, 1_000, 61_500]), Some((1, 2)));
    }

    #[test]
    fn the_axis_keeps_gaps_and_stays_bounded_after_a_clock_jump() {
        assert_eq!(
            regular_axis(&[0, 1_000, 3_000], 1_000),
            (0, vec![Some(0), Some(1), None, Some(2)])
        );
        // Jitter lands on the nearest point.
        assert_eq!(
            regular_axis(&[10, 1_020, 1_990], 1_000),
            (-10, vec![Some(0), Some(1), Some(2)])
        );
        let (start, axis) = regular_axis(&[0, 1_000, 10_000_000_000], 1_000);
        assert_eq!(axis.len(), 64);
        assert_eq!(start, 10_000_000_000 - 63_000);
        assert_eq!(axis.last(), Some(&Some(2)));
        assert_eq!(regular_axis(&[], 1_000), (0, vec![]));
    }
}
