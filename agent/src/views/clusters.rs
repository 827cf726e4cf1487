//! [`ClusterView`] over the clustering engine: the cluster rows (cached, see the views' module
//! documentation), a cluster's detail, and the engine's counters.

use faultline_web::model::Culprit;

use super::{counter, Clock, PipelineCounters, MS_PER_MIN, NANOS_PER_MIN, NANOS_PER_MS};
use crate::culprits;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_clustering::emergence::{Emergence as EngineEmergence, EmergenceKind as EngineKind};
use faultline_clustering::engine::{
    ClusterDetail as EngineDetail, ClusterQuery, ClusterSummary as EngineSummary,
    Sample as EngineSample, SECOND_HISTORY,
};
use faultline_clustering::{ClusterId, Engine, EngineCounts, TemplateId};
use faultline_diagnosis::activity::SecondCounts;
use faultline_diagnosis::onset::{current_run_start, surge_start_minute, QUIET_GAP_SECONDS};
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::TraceStore;
use faultline_web::model::{
    ClusterDetail, ClusterSummary, ClusterView, Emergence, EmergenceKind, MinuteCounts,
    ParameterDistribution, PatternCounts, PatternEvidence, PatternStack, Sample, SeenIn,
    SharedFailures, StoreCounter, TemplateRow, ValueCount,
};

/// Shortest time between two rebuilds of the cluster rows.
pub const ROWS_REFRESH: Duration = Duration::from_millis(500);

/// While the engine saw no new event, the rows are still rebuilt this often: emergence, rates
/// and sparklines move with the clock, and a background DBSCAN re-run can regroup clusters.
pub const ROWS_IDLE_REFRESH: Duration = Duration::from_secs(5);

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

/// [`ClusterView`] over the clustering engine (plus the trace store, for the traces a cluster
/// was tagged on, and the counters, for who listens on the ports its failing calls name).
pub(super) struct ClusterAdapter {
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    counters: Arc<CounterStore>,
    pipeline_counters: PipelineCounters,
    clock: Clock,
    refresh: Duration,
    cache: Mutex<RowCache>,
    /// Recent culprit verdicts by (pattern, traces read), at most [`MAX_CACHED_CULPRITS`].
    culprits: Mutex<CulpritCache>,
}

/// Culprit verdicts by (pattern id, traces read), with when they were judged and the
/// pattern's latest occurrence then (Unix ms).
type CulpritCache = HashMap<(String, usize), (Instant, i64, Option<Culprit>)>;

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
    pub(super) fn new(
        engine: Arc<Engine>,
        traces: Arc<TraceStore>,
        counters: Arc<CounterStore>,
        pipeline_counters: PipelineCounters,
        clock: Clock,
        refresh: Duration,
    ) -> Self {
        ClusterAdapter {
            engine,
            traces,
            counters,
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
        let counts = self.engine.counters();
        (counts.bounds.events, counts.templates, counts.clusters)
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
                // Regrouped between the two calls: no counts for this round.
                _ => self.engine.cluster_minutes(summary.id).unwrap_or_default(),
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
            rows[i].culprit =
                self.culprit(&rows[i].id, ROW_CULPRIT_TRACES, rows[i].last_seen_unix_ms);
        }
    }

    /// A pattern's culprit voted over its `limit` most recent traces of its current run (see
    /// [`pattern_culprit`]), reused for
    /// [`ROW_CULPRIT_REFRESH`]: the pattern page refreshes with every change and the incident
    /// tracker reads every emerging pattern's detail each second.
    ///
    /// `last_seen_unix_ms` is the pattern's latest occurrence now: a verdict judged before
    /// the pattern came back after a minute of silence (a new run, see
    /// [`current_run_start`]) is not reused, however fresh — it was voted over the run before.
    /// Seen on the unseen lab, one agent through all faults: the gateway's echo `metadata
    /// answered <num>`, still emerging from a slow blob store's fault minutes before, kept its
    /// verdict of that run ("starts in blobstore") refreshed every 5 s; a client leaking its
    /// connections brought it back, and for up to 5 s it was an incident "in blobstore" of
    /// its own beside the leaking client's, counting the slow fault's failures too.
    fn culprit(&self, id: &str, limit: usize, last_seen_unix_ms: i64) -> Option<Culprit> {
        let key = (id.to_owned(), limit);
        {
            let cache = self.culprits.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, seen, verdict)) = cache.get(&key) {
                let same_run = last_seen_unix_ms - seen < QUIET_GAP_SECONDS as i64 * 1000;
                if at.elapsed() < ROW_CULPRIT_REFRESH && same_run {
                    return verdict.clone();
                }
            }
        }
        let listeners = culprits::listeners(&self.traces, &self.counters);
        let now = (self.clock)();
        let verdict = pattern_culprit(&self.engine, &self.traces, &listeners, id, limit, now);
        let mut cache = self.culprits.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_CULPRITS {
            cache.retain(|_, (at, ..)| at.elapsed() < ROW_CULPRIT_REFRESH);
        }
        if cache.len() < MAX_CACHED_CULPRITS || cache.contains_key(&key) {
            cache.insert(key, (Instant::now(), last_seen_unix_ms, verdict.clone()));
        }
        verdict
    }

    /// Trace ids of a cluster, newest first, at most `limit` (and [`MAX_DETAIL_TRACES`]): those
    /// of its samples and those the pipeline tagged in the trace store, under its current id or
    /// an id it had before (a trace is tagged with the id its pattern had when the trace
    /// arrived). Ids only: no trace is decoded.
    ///
    /// The store is asked for its `limit` newest: a tagged trace below them has `limit`
    /// distinct traces above it. The diagnosis reads 20 of each pattern it judges at every
    /// pass; it took 50, rendered them all, and kept the first 20.
    fn trace_ids(
        &self,
        id: ClusterId,
        former_ids: &[ClusterId],
        samples: &[EngineSample],
        limit: usize,
    ) -> Vec<String> {
        let limit = limit.min(MAX_DETAIL_TRACES);
        let mut dated: Vec<(i64, String)> = samples
            .iter()
            .filter_map(|s| {
                let trace = s.trace_id.as_deref()?.to_ascii_lowercase();
                Some((s.time_unix_nanos, trace))
            })
            .collect();
        let ids: Vec<String> = std::iter::once(&id)
            .chain(former_ids)
            .map(ClusterId::to_string)
            .collect();
        dated.extend(
            self.traces
                .tagged(&ids, limit)
                .into_iter()
                .map(|(start, trace)| (start, trace.to_string())),
        );
        dated.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut ids: Vec<String> = Vec::new();
        for (_, trace) in dated {
            if ids.len() >= limit {
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
        let now = (self.clock)();
        let detail = engine_detail(&self.engine, id, now)?;
        let summary = summary_row(&detail.summary, &detail.per_minute, now);
        let trace_ids = self.trace_ids(
            detail.summary.id,
            &detail.former_ids,
            &detail.samples,
            MAX_DETAIL_TRACES,
        );
        let only_severity = match detail.severities.as_slice() {
            [(severity, _)] => severity.clone(),
            _ => String::new(),
        };
        Some(ClusterDetail {
            summary,
            templates: detail.templates.iter().map(template_row).collect(),
            parameters: parameters(&detail.top_values, detail.values_total)
                .into_iter()
                .chain(frame_parameter(&detail.frames, detail.frames_total))
                .collect(),
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
            // The pattern's current id: an old id asks about the same pattern.
            culprit: self.culprit(
                &detail.summary.id.to_string(),
                culprits::PATTERN_TRACES,
                detail.summary.last_seen_unix_nanos.div_euclid(NANOS_PER_MS),
            ),
            stack: detail.stack.as_ref().map(|(text, trace_id)| PatternStack {
                text: text.clone(),
                trace_id: trace_id.as_deref().map(str::to_ascii_lowercase),
                top_frame: detail.frames.first().map(|(frame, _)| frame.clone()),
            }),
        })
    }

    /// The engine's newest samples and the trace store's index: neither the detail's pass over
    /// every key of the engine nor a decoded trace.
    fn evidence(&self, id: &str, traces: usize) -> Option<PatternEvidence> {
        let found = self
            .engine
            .cluster_samples(resolve_pattern(&self.engine, id)?)?;
        Some(PatternEvidence {
            trace_ids: self.trace_ids(found.id, &found.former_ids, &found.samples, traces),
            example: found.samples.into_iter().next().map(|s| s.message),
            run_start_unix_ms: run_start(&found.per_second),
        })
    }

    fn pattern_counts(&self, ids: &[&str]) -> Vec<Option<PatternCounts>> {
        let resolved: Vec<Option<ClusterId>> = ids
            .iter()
            .map(|id| resolve_pattern(&self.engine, id))
            .collect();
        let asked: Vec<ClusterId> = resolved.iter().flatten().copied().collect();
        let mut counts = self.engine.counts(&asked).into_iter();
        resolved
            .into_iter()
            .map(|id| {
                id?;
                let c = counts.next().flatten()?;
                Some(PatternCounts {
                    count: c.count,
                    untraced: c.untraced,
                    failed_before: c
                        .failed_before
                        .iter()
                        .map(|(other, n)| (other.to_string(), *n))
                        .collect(),
                })
            })
            .collect()
    }

    fn store_counters(&self) -> Vec<StoreCounter> {
        let EngineCounts {
            bounds: c,
            templates,
            clusters,
        } = self.engine.counters();
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

/// The current id of the pattern `id` names: a cluster id or the id of one of its templates,
/// current or retired (merged or renamed away: the engine follows the aliases), so that a
/// link or a tag holding an old id keeps answering. `None` when the id names no pattern (any
/// more). The one resolver of the API's pattern ids: the pattern page, "what moved" and the
/// trace list all ask it.
pub(super) fn resolve_pattern(engine: &Engine, id: &str) -> Option<ClusterId> {
    let id = parse_cluster_id(id)?;
    engine
        .resolve_cluster(id)
        .or_else(|| engine.cluster_of_template(TemplateId(id.0)))
}

/// The engine's detail of the pattern `id` names (see [`resolve_pattern`]), with the
/// pattern's current id in `summary.id`.
pub(super) fn engine_detail(engine: &Engine, id: &str, now: i64) -> Option<EngineDetail> {
    engine.cluster(resolve_pattern(engine, id)?, now)
}

/// Where the failures of the pattern `id` names live, voted over its `limit` most recent
/// traces of its current run (see [`culprits::of_pattern`]): every recent trace when the
/// seconds held show no minute of silence before its latest occurrences.
pub(super) fn pattern_culprit(
    engine: &Engine,
    traces: &TraceStore,
    listeners: &faultline_diagnosis::culprit::Listeners,
    id: &str,
    limit: usize,
    now_unix_nanos: i64,
) -> Option<Culprit> {
    let since = resolve_pattern(engine, id)
        .and_then(|c| engine.cluster_samples(c))
        .and_then(|found| run_start(&found.per_second));
    culprits::of_pattern(
        traces,
        listeners,
        &tag_ids(engine, id),
        limit,
        culprits::run_start_nanos(since),
        Some(now_unix_nanos),
    )
}

/// The start (Unix ms) of a pattern's current run from its occurrences per second (the
/// engine's sparse seconds), see [`current_run_start`].
fn run_start(per_second: &[(i64, u64)]) -> Option<i64> {
    current_run_start(
        &SecondCounts::from_sparse(per_second, SECOND_HISTORY),
        QUIET_GAP_SECONDS,
    )
}

/// The cluster ids the traces of the pattern `id` names are tagged with: a trace keeps the id
/// its pattern had when the trace arrived, so the pattern's current id and its former ids
/// (see [`resolve_pattern`]). An id that names no pattern now (evicted, or never one) is
/// looked up as it is: traces tagged with it may still be stored.
pub(super) fn tag_ids(engine: &Engine, id: &str) -> Vec<String> {
    match resolve_pattern(engine, id) {
        Some(current) => std::iter::once(current)
            .chain(engine.former_ids(current))
            .map(|id| id.to_string())
            .collect(),
        None => vec![id.to_owned()],
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
pub(super) fn summary_row(
    s: &EngineSummary,
    per_minute: &[(i64, u64)],
    now_nanos: i64,
) -> ClusterSummary {
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
        untraced_count: s.untraced,
        rate_per_minute,
        template_count: s.templates as u64,
        emergence: s
            .emergence
            .as_ref()
            .map(|e| emergence(e, s.first_seen_unix_nanos, &by_minute, now_nanos)),
        sparkline: minute_counts(&by_minute, now_min - SPARKLINE_MINUTES + 1, now_min),
        culprit: None,
        failed_before: s
            .failed_before
            .iter()
            .map(|(other, count)| SharedFailures {
                pattern_id: other.to_string(),
                count: *count,
            })
            .collect(),
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
pub(super) fn detail_minutes(per_minute: &[(i64, u64)], now_nanos: i64) -> MinuteCounts {
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

/// The top application frames of the pattern's stacks as a parameter of its own: where in
/// the service's code the failure happened (a panic's line), which the masked text does not
/// say.
fn frame_parameter(frames: &[(String, u64)], total: u64) -> Option<ParameterDistribution> {
    (!frames.is_empty()).then(|| ParameterDistribution {
        name: "stack frame".to_owned(),
        top: frames
            .iter()
            .map(|(value, count)| ValueCount {
                value: value.clone(),
                count: *count,
            })
            .collect(),
        other_count: total.saturating_sub(frames.iter().map(|(_, c)| c).sum()),
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use faultline_ingest::traces::{SpanKind, StatusCode};
    use faultline_web::model::TraceQuery;

    use crate::views::test_support::*;

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
        // What the diagnosis reads each run (no detail built) says the same.
        let evidence = views.clusters.evidence(&id, 20).expect("known cluster");
        assert_eq!(evidence.example.as_deref(), Some(messages[5].as_str()));
        assert_eq!(evidence.trace_ids, detail.trace_ids);
        let first = views.clusters.evidence(&id, 1).expect("known cluster");
        assert_eq!(first.trace_ids, detail.trace_ids[..1]);
        assert!(views.clusters.evidence("0000000000000000", 20).is_none());
        assert!(views.clusters.evidence("not-an-id", 20).is_none());
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

    /// The diagnosis dates a pattern from its current run: the same text after a minute of
    /// silence is a new run (a restart's few refusals, then minutes later a killed callee's).
    #[test]
    fn what_the_diagnosis_reads_says_when_the_current_run_began() {
        let stores = stores();
        let refused = "dial tcp 10.0.0.9:8082: connect: connection refused";
        let id = stores
            .engine
            .observe(&error_event(refused, "orders", None, NOW - 3 * MIN))
            .cluster
            .expect("clustered");
        let views = views_at(&stores, NOW);
        let evidence = views.clusters.evidence(&id.to_string(), 20).expect("known");
        assert_eq!(
            evidence.run_start_unix_ms, None,
            "one run, begun before the seconds held"
        );
        for t in [NOW - 30 * 1_000_000_000, NOW - 29 * 1_000_000_000] {
            stores
                .engine
                .observe(&error_event(refused, "orders", None, t));
        }
        let views = views_at(&stores, NOW);
        let evidence = views.clusters.evidence(&id.to_string(), 20).expect("known");
        assert_eq!(
            evidence.run_start_unix_ms,
            Some((NOW - 30 * 1_000_000_000).div_euclid(NANOS_PER_MS))
        );
    }

    /// One failed request of the unseen lab's echo, tagged with the pattern `id`: the
    /// gateway's call reports `echo`, the service below (`culprit`) failed with an error of
    /// its own; with `root`, the gateway's server span too.
    fn echo_failed(
        stores: &Stores,
        echo: &str,
        trace: u8,
        start: i64,
        (culprit, error): (&str, &str),
        id: &str,
        root: bool,
    ) {
        let ms = 1_000_000;
        let mut call = span(
            trace,
            2,
            Some(1),
            "gateway",
            "GET",
            (start + 2 * ms, start + 90 * ms),
            StatusCode::Error,
        );
        call.status_message = echo.into();
        let mut below = span(
            trace,
            3,
            Some(2),
            culprit,
            "GET /item/:id",
            (start + 3 * ms, start + 80 * ms),
            StatusCode::Error,
        );
        below.kind = SpanKind::Server;
        below.status_message = error.into();
        let mut spans = vec![call, below];
        if root {
            spans.push(span(
                trace,
                1,
                None,
                "gateway",
                "GET /api/item/:id",
                (start, start + 100 * ms),
                StatusCode::Unset,
            ));
        }
        stores.traces.insert_spans(spans);
        stores
            .traces
            .tag_cluster(trace_id(trace), Some(span_id(2)), id);
    }

    /// The gateway's `echo` in `trace` at `t`, clustered: its pattern's id.
    fn echo_observed(stores: &Stores, echo: &str, trace: u8, t: i64) -> String {
        let trace = trace_id(trace).to_string();
        stores
            .engine
            .observe(&error_event(echo, "gateway", Some(&trace), t))
            .cluster
            .expect("clustered")
            .to_string()
    }

    /// The run before, in the unseen lab: the slow blob store, four minutes before `NOW`, six
    /// failed requests each reported by the gateway's `echo` (see [`echo_failed`]). The
    /// echo's pattern id.
    fn slow_blobstore_echoes(stores: &Stores, echo: &str, root: bool) -> String {
        let ms = 1_000_000;
        let before = NOW - 4 * MIN;
        let mut id = String::new();
        for n in 1..=6u8 {
            let t = before + i64::from(n - 1) * 1_000 * ms;
            id = echo_observed(stores, echo, n, t + 90 * ms);
            echo_failed(
                stores,
                echo,
                n,
                t,
                ("blobstore", "disk read stalled"),
                &id,
                root,
            );
        }
        id
    }

    /// The unseen lab, one agent through all faults: the gateway's echo `metadata answered
    /// 502` comes back with every fault below it. Its culprit is voted over the traces of its
    /// current run only: the many traces of the run before (a slow blob store's, minutes ago)
    /// say where that fault lived, not this one (a leaking metadata). A trace of this run that
    /// started seconds before its first occurrence (a request that waited) votes.
    #[test]
    fn an_echo_back_after_a_minute_of_silence_is_attributed_by_its_current_run_only() {
        let stores = stores();
        let ms = 1_000_000;
        let echo = "metadata answered 502";
        // One failed request: gateway's call to metadata reports the echo, the service below
        // failed with an error of its own.
        let failed = |trace: u8, start: i64, culprit: &str, error: &str, id: &str| {
            echo_failed(&stores, echo, trace, start, (culprit, error), id, true);
        };
        let observe = |trace: u8, t: i64| echo_observed(&stores, echo, trace, t);
        let id = slow_blobstore_echoes(&stores, echo, true);
        // Silence, then metadata out of fds: two failed requests, the first of which started
        // five seconds before its echo (it waited).
        let now_run = NOW - 20_000 * ms;
        for (n, started) in [(7u8, now_run - 5_000 * ms), (8, now_run + 1_000 * ms)] {
            let at = now_run.max(started + 90 * ms);
            assert_eq!(observe(n, at), id, "one pattern across faults");
            failed(
                n,
                started,
                "metadata",
                "open blob: too many open files",
                &id,
            );
        }

        let views = views_at(&stores, NOW);
        let detail = views.clusters.detail(&id).expect("known");
        let culprit = detail.culprit.expect("a culprit");
        assert_eq!(
            (culprit.service.as_str(), culprit.traces_total),
            ("metadata", 2),
            "{culprit:?}"
        );
        // The list row, whose culprit the incidents group by, says the same.
        let rows = views.clusters.summaries();
        let row = rows.iter().find(|r| r.id == id).expect("listed");
        assert!(row.emergence.is_some(), "{row:?}");
        assert_eq!(
            row.culprit.as_ref().map(|c| c.service.as_str()),
            Some("metadata")
        );
        // Voted over every recent trace, the run before outvotes this one.
        let listeners = culprits::listeners(&stores.traces, &stores.counters);
        let all = culprits::of_pattern(
            &stores.traces,
            &listeners,
            std::slice::from_ref(&id),
            200,
            None,
            None,
        )
        .expect("a culprit");
        assert_eq!((all.service.as_str(), all.traces_total), ("blobstore", 8));
    }

    /// The same echo, judged while it is already shown: still emerging from the slow blob
    /// store's fault, it carries that run's verdict ("starts in blobstore"), reused for a few
    /// seconds. When the echo comes back after a minute of silence, it is judged again, over
    /// the new run: the verdict of the run before is not this one's, however fresh.
    #[test]
    fn a_fresh_verdict_of_the_run_before_is_not_reused_when_a_pattern_comes_back() {
        let stores = stores();
        let ms = 1_000_000;
        let echo = "metadata answered 502";
        let failed = |trace: u8, start: i64, culprit: &str, error: &str, id: &str| {
            echo_failed(&stores, echo, trace, start, (culprit, error), id, false);
        };
        let observe = |trace: u8, t: i64| echo_observed(&stores, echo, trace, t);
        let id = slow_blobstore_echoes(&stores, echo, false);
        let views = views_at(&stores, NOW);
        // The pattern page's verdict (the list's rows are rebuilt at most every
        // `ROWS_REFRESH`, and judged through the same cache).
        let culprit = |views: &faultline_web::Views| {
            let detail = views.clusters.detail(&id).expect("known");
            detail.culprit.map(|c| c.service)
        };
        assert_eq!(culprit(&views).as_deref(), Some("blobstore"));

        let now_run = NOW - 2_000 * ms;
        for n in 7..=8u8 {
            assert_eq!(
                observe(n, now_run + 90 * ms),
                id,
                "one pattern across faults"
            );
            failed(
                n,
                now_run,
                "metadata",
                "open blob: too many open files",
                &id,
            );
        }
        assert_eq!(culprit(&views).as_deref(), Some("metadata"));
    }

    /// The unseen lab's close-wait fault: a span exporter's lines without a trace id share the
    /// pattern of the requests that failed with the same error. The row says how many of its
    /// occurrences have no trace, and an incident reads the counts of its own patterns only.
    #[test]
    fn a_pattern_says_which_occurrences_have_no_trace_and_its_counts_are_read_alone() {
        let stores = stores();
        let traced = "Get \"http://127.0.0.1:8082/blob/7\": dial tcp 127.0.0.1:8082: socket: too many open files";
        let exporter = "otlp export: Post \"http://127.0.0.1:4318/v1/traces\": dial tcp 127.0.0.1:4318: socket: too many open files";
        let mut id = None;
        for n in 1..=3u8 {
            let trace = trace_id(n).to_string();
            id = stores
                .engine
                .observe(&error_event(traced, "metadata", Some(&trace), NOW - MIN))
                .cluster;
        }
        for _ in 0..2 {
            stores
                .engine
                .observe(&error_event(exporter, "metadata", None, NOW - MIN));
        }
        stores.engine.maintain();
        let id = id.expect("clustered").to_string();
        let views = views_at(&stores, NOW);
        let rows = views.clusters.summaries();
        let row = rows.iter().find(|r| r.id == id).expect("listed");
        assert_eq!((row.total_count, row.untraced_count), (5, 2), "{rows:?}");
        let counts = views
            .clusters
            .pattern_counts(&[id.as_str(), "0000000000000000", "not-an-id"]);
        assert_eq!(
            counts,
            [
                Some(PatternCounts {
                    count: 5,
                    untraced: 2,
                    failed_before: Vec::new()
                }),
                None,
                None
            ]
        );
    }

    /// What the diagnosis reads of a pattern at every pass is the first traces of its page,
    /// however many: samples newer and older than the tagged traces, traces both sampled and
    /// tagged.
    #[test]
    fn a_patterns_evidence_lists_the_first_trace_ids_of_its_detail() {
        let stores = stores();
        let text = "Get \"http://127.0.0.1:8082/blob/7\": read: connection reset by peer";
        let mut id = None;
        // Traces 1..=40 tagged (started 1 ms apart, trace 40 the newest); traces 36..=38 and
        // 1..=2 sampled too (the engine keeps the last 5 to arrive), the first before every
        // tagged start, the others after.
        for n in 1..=40u8 {
            let start = NOW - 2 * MIN + i64::from(n) * 1_000_000;
            stores.traces.insert_spans(vec![span(
                n,
                1,
                None,
                "api",
                "GET /blob",
                (start, start + 1_000),
                StatusCode::Error,
            )]);
        }
        for n in (36..=38u8).chain(1..=2) {
            let t = if n <= 2 { NOW - MIN } else { NOW - 3 * MIN };
            id = stores
                .engine
                .observe(&error_event(
                    text,
                    "api",
                    Some(&trace_id(n).to_string()),
                    t + i64::from(n),
                ))
                .cluster;
        }
        let id = id.expect("clustered").to_string();
        for n in 1..=40u8 {
            stores
                .traces
                .tag_cluster(trace_id(n), Some(span_id(1)), &id);
        }
        let views = views_at(&stores, NOW);
        let detail = views.clusters.detail(&id).expect("known");
        assert_eq!(detail.trace_ids.len(), 40, "{:?}", detail.trace_ids);
        assert_eq!(
            detail.trace_ids[0],
            trace_id(2).to_string(),
            "the newest sample"
        );
        for traces in [1, 5, 6, 12, 20, 39, 40, 60] {
            let evidence = views.clusters.evidence(&id, traces).expect("known");
            let first = &detail.trace_ids[..traces.min(detail.trace_ids.len())];
            assert_eq!(evidence.trace_ids, first, "{traces} traces");
        }
    }

    /// Issue #15: a trace is tagged with the id its pattern had when the trace arrived; after
    /// the pattern is renamed, its page (asked for by either id) still lists that trace.
    #[test]
    fn a_renamed_pattern_lists_the_traces_tagged_under_its_old_id() {
        let stores = stores();
        let old = stores
            .engine
            .observe(&error_event(
                "Get \"http://user-svc/u/7\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                "order-svc",
                None,
                NOW - 3 * MIN,
            ))
            .cluster
            .expect("clustered");
        stores.engine.maintain();
        stores.traces.insert_spans(vec![span(
            9,
            1,
            None,
            "order-svc",
            "GET /orders",
            (NOW - 3 * MIN, NOW - 3 * MIN + 1_000_000),
            StatusCode::Error,
        )]);
        // The failing span reported the error under the pattern's id of the time.
        stores
            .traces
            .tag_cluster(trace_id(9), Some(span_id(1)), &old.to_string());
        // The plain wording of the same kind names the pattern from the next maintenance on.
        stores.engine.observe(&error_event(
            "call user: context deadline exceeded",
            "order-svc",
            None,
            NOW - 2 * MIN,
        ));
        stores.engine.maintain();
        let new = stores.engine.resolve_cluster(old).expect("an alias");
        assert_ne!(new, old, "renamed");

        let views = views_at(&stores, NOW);
        // An incident that listed the pattern under its old id is recounted under the new.
        let counts = views
            .clusters
            .pattern_counts(&[&old.to_string(), &new.to_string()]);
        assert_eq!(counts[0].as_ref().map(|c| c.count), Some(2));
        assert_eq!(counts[0], counts[1]);
        for asked in [new, old] {
            let detail = views
                .clusters
                .detail(&asked.to_string())
                .expect("either id answers");
            assert_eq!(
                detail.summary.id,
                new.to_string(),
                "the current id is stated"
            );
            assert_eq!(
                detail.trace_ids,
                [trace_id(9).to_string()],
                "asked as {asked}"
            );
            let evidence = views
                .clusters
                .evidence(&asked.to_string(), 20)
                .expect("either id answers");
            assert_eq!(evidence.trace_ids, detail.trace_ids, "asked as {asked}");
            // The trace tagged before the rename votes on where the failures live (the
            // incidents group by that verdict): it was left out, and the pattern had none.
            let culprit = detail.culprit.expect("the old trace votes");
            assert_eq!(
                (culprit.service.as_str(), culprit.traces_total),
                ("order-svc", 1),
                "asked as {asked}"
            );
        }
        // The trace list filtered by the pattern lists the trace too, asked by the pattern's
        // current id, its old id or a template's id.
        let template = stores
            .engine
            .cluster(new, NOW)
            .expect("live")
            .templates
            .iter()
            .map(|t| t.id.to_string())
            .next()
            .expect("a template");
        for asked in [new.to_string(), old.to_string(), template] {
            let listed = views.traces.find(&TraceQuery {
                cluster: Some(asked.clone()),
                limit: 10,
                ..TraceQuery::default()
            });
            let ids: Vec<&str> = listed.iter().map(|t| t.trace_id.as_str()).collect();
            assert_eq!(ids, [trace_id(9).to_string()], "asked as {asked}");
        }
        let unknown = views.traces.find(&TraceQuery {
            cluster: Some("00000000000000ff".to_owned()),
            limit: 10,
            ..TraceQuery::default()
        });
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    /// Issue #15: a template id, current or merged away, answers with the pattern that holds
    /// the template now (its page and its "what moved"), under the pattern's current id.
    #[test]
    fn a_template_id_old_or_current_answers_with_its_pattern() {
        let stores = stores();
        let first = stores
            .engine
            .observe(&error_event(
                "cache alpha: connection refused",
                "cart-svc",
                None,
                NOW - 2 * MIN,
            ))
            .template
            .expect("templated");
        for (i, name) in ["beta", "gamma", "delta", "epsilon", "zeta"]
            .iter()
            .enumerate()
        {
            stores.engine.observe(&error_event(
                &format!("cache {name}: connection refused"),
                "cart-svc",
                None,
                NOW - 2 * MIN + i as i64,
            ));
        }
        stores.engine.maintain();
        let merged = stores.engine.resolve_template(first).expect("merged");
        assert_ne!(merged, first, "the first template was merged away");

        let views = views_at(&stores, NOW);
        let rows = views.clusters.summaries();
        assert_eq!(rows.len(), 1);
        let pattern = rows[0].id.clone();
        for template in [first, merged] {
            let detail = views
                .clusters
                .detail(&template.to_string())
                .expect("a template id answers");
            assert_eq!(detail.summary.id, pattern);
            assert!(detail.templates.iter().any(|t| t.id == merged.to_string()));
            let moved = views
                .diagnosis
                .moved(&template.to_string())
                .expect("what moved answers too");
            assert_eq!(moved.cluster_id, pattern);
        }
        assert!(views.clusters.detail("00000000000000ff").is_none());
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
            Arc::clone(&stores.counters),
            Arc::clone(&pipeline),
            Arc::clone(&clock),
            Duration::from_secs(3600),
        );
        let eager = ClusterAdapter::new(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
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
}
