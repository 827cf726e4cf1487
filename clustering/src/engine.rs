//! The live engine: observe error events, answer queries about error patterns.
//!
//! [`Engine`] is shared by the agent's tasks (`Arc<Engine>`); its state sits behind one
//! mutex held only for short, bounded work. [`Engine::observe`] masks the message, finds its
//! template key (one hash look-up for a known shape) and updates the counters of its root;
//! a new shape also computes its root and places it in the nearest cluster. The slower work
//! runs in [`Engine::maintain`], which the agent calls from a background task every few
//! seconds: template consolidation (short, under the lock) and the DBSCAN re-run over roots
//! (on a copy, outside the lock; the result is adopted under the lock afterwards).
//!
//! Statistics are kept per *root* (the innermost error kind) and summed per cluster at query
//! time, so a DBSCAN re-run that regroups roots never loses or double-counts an event.
//!
//! A root counts *failures*, not reports of them (see [`crate::occurrence`]): within one
//! trace, the first report of a pattern is an occurrence and every later report of it (the
//! caller's echo, the error span carrying the same text) only adds where it was seen. Counts,
//! per-minute and per-second series, samples and emergence are by occurrence; a template
//! counts the reports of its own shape.
//!
//! Ids: a template's and a cluster's id are content hashes, and the groupings they name are
//! functions of the set of shapes and roots seen once [`Engine::maintain`] ran (see
//! [`crate::template`] and [`crate::cluster`]), so two nodes that saw the same errors in any
//! order give the same ids. An id that a consolidation, a re-run or an eviction retires stays
//! an alias of the id that took its place ([`Engine::resolve_template`],
//! [`Engine::resolve_cluster`]; [`Engine::cluster`] follows them), kept in snapshots.
//!
//! Bounds: at most `max_templates` keys and `max_clusters` roots. When a bound is reached the
//! least useful tenth is evicted (templates: fewest events; roots: not seen within the
//! emergence baseline first, then fewest events), so a new kind of error still gets its own
//! pattern after months of uptime; an event that fits nowhere even then is counted in the
//! "other" bucket ([`EngineCounters`]), never lost silently. Samples, services and parameter
//! values per root are bounded too, and at most [`MAX_CLUSTER_ALIASES`] cluster aliases are
//! kept (oldest leave first).

use std::collections::{BTreeMap, HashMap, VecDeque};

use faultline_ingest::{Level, LogRecord};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::alias::AliasMap;
use crate::batch::cut;
use crate::cluster::{ClusterId, IdTable, RootClusters, RootIndex, VectorParams};
use crate::config::ClusteringConfig;
use crate::emergence::{judge, Emergence, Thresholds};
use crate::mask::{MaskedLine, ParamKind};
use crate::occurrence::{sources_of, EventSource, RecentTraces, ReportKind, Retraction, RootRef};
use crate::root::{reports_http_status, root_signature};
use crate::snapshot::{
    CountersV1, KeyStatsV1, KeyV1, Migration, RootStatsV1, RootV1, SampleV1, Snapshot,
    SnapshotError, SnapshotV2, CURRENT_FORMAT,
};
use crate::template::{display_template, KeyIndex, TemplateId, TemplateMiner};

const NANOS_PER_MIN: i64 = 60_000_000_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;
const MAX_SERVICES: usize = 32;
/// Services counted per template: the few that write that exact shape.
const MAX_TEMPLATE_SERVICES: usize = 8;
/// The current rate is the count of the last this many seconds, per minute.
const RATE_WINDOW_SECS: i64 = 60;

/// Most cluster aliases kept: ten times the default `max_clusters` (2,000), so every pattern
/// can be merged or renamed ten times before its oldest alias (a link older than most
/// dashboards) leaves. Memory: about 40 bytes each, under 1 MB.
pub const MAX_CLUSTER_ALIASES: usize = 20_000;
/// Most former ids a [`ClusterDetail`] lists: a pattern is renamed a handful of times in its
/// life; the bound keeps a look-up by every former id (trace tags) short.
pub const MAX_FORMER_IDS: usize = 16;

/// Seconds of per-second counts kept per root: as long as the node counters' full-resolution
/// history (15 min at 1 s by default), beside which they are read to tell whether a counter
/// moved a few seconds before or after a pattern began. Per-minute counts cover the rest.
/// Memory: at most this many `(second, count)` pairs per root, and only roots with events in
/// those seconds hold any.
pub const SECOND_HISTORY: usize = 900;

/// One error event to cluster.
#[derive(Debug, Clone, Copy)]
pub struct ErrorEvent<'a> {
    /// The text to cluster (a record's error field, else its message).
    pub text: &'a str,
    /// The service it came from.
    pub service: Option<&'a str>,
    /// Severity name (`error`, `warn`, `fatal`, ...).
    pub severity: &'a str,
    /// Trace id (hex), if any.
    pub trace_id: Option<&'a str>,
    /// Span id (hex), if any.
    pub span_id: Option<&'a str>,
    /// When it happened, Unix nanoseconds.
    pub time_unix_nanos: i64,
    /// The stack trace the record carried (a Go panic's goroutine dump), if any.
    pub stack: Option<&'a str>,
    /// The stack's top application frame (`main.(*T).m file.go:42`), if known: a parameter
    /// of the pattern, counted like its masked values.
    pub frame: Option<&'a str>,
}

impl<'a> ErrorEvent<'a> {
    /// The event of one error-ish log record (a tailed line, an OTLP log record, an error
    /// span as a record), at `time_unix_nanos` (the record's own time, or the time the reader
    /// gives a record that has none). `ids` are the record's own ([`RecordIds::of`]): the
    /// event borrows their hex text.
    pub fn from_record(
        record: &'a LogRecord,
        ids: &'a RecordIds,
        time_unix_nanos: i64,
    ) -> ErrorEvent<'a> {
        ErrorEvent {
            text: record.cluster_text(),
            service: record.service.as_deref(),
            severity: severity(record.level, record.http_status),
            trace_id: ids.trace_id.as_deref(),
            span_id: ids.span_id.as_deref(),
            time_unix_nanos,
            stack: record.stack(),
            frame: record.stack_frame(),
        }
    }
}

/// A log record's trace and span ids as the hex text an [`ErrorEvent`] carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIds {
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl RecordIds {
    /// The ids of `record`.
    pub fn of(record: &LogRecord) -> RecordIds {
        RecordIds {
            trace_id: record.trace_id.map(|id| id.to_string()),
            span_id: record.span_id.map(|id| id.to_string()),
        }
    }
}

/// The severity an error event records: the level, or `error` for a request log of a 5xx
/// without one (an access line with no level is an error when the request failed).
pub fn severity(level: Level, http_status: Option<u16>) -> &'static str {
    match level {
        Level::Panic => "panic",
        Level::Fatal => "fatal",
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info | Level::Debug | Level::Trace | Level::Unknown
            if http_status.is_some_and(|s| s >= 500) =>
        {
            "error"
        }
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
        Level::Unknown => "error",
    }
}

/// Stacks are kept cut to this many bytes: a goroutine dump's first frames are where the
/// failure is; a dump of every goroutine can be megabytes.
const MAX_STACK_BYTES: usize = 16 * 1024;

/// Where an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Its template (`None` when it went to the "other" bucket).
    pub template: Option<TemplateId>,
    /// Its cluster (`None` when it went to the "other" bucket).
    pub cluster: Option<ClusterId>,
    /// The event reported a failure already counted in its trace (an echo): it added to
    /// where the occurrence was seen, not to the count.
    pub echo: bool,
}

/// A sample message of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The message (cut to the configured length).
    pub message: String,
    /// Its service.
    pub service: Option<String>,
    /// Its trace id.
    pub trace_id: Option<String>,
    /// Its span id.
    pub span_id: Option<String>,
    /// When it happened, Unix nanoseconds.
    pub time_unix_nanos: i64,
}

/// What [`Engine::counters`] reports: what the bounds did so far and how much the engine holds
/// now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounts {
    /// What the bounds did (kept in the snapshot, so they survive restarts).
    pub bounds: EngineCounters,
    /// Template keys (exact masked shapes) held now.
    pub templates: usize,
    /// Clusters (error patterns) held now.
    pub clusters: usize,
}

/// Counters of what the bounds did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineCounters {
    /// Events observed.
    pub events: u64,
    /// Events counted in "other" because their new shape or root did not fit.
    pub other_events: u64,
    /// New shapes refused because `max_templates` was reached (eviction found no room).
    pub templates_refused: u64,
    /// Template keys evicted (stale, low-count) to make room for new ones.
    pub templates_evicted: u64,
    /// Events of evicted template keys (still counted in their clusters).
    pub evicted_events: u64,
    /// New roots refused because `max_clusters` was reached (eviction found no room).
    pub roots_refused: u64,
    /// Roots (error kinds) evicted to make room for new ones, with their templates.
    pub roots_evicted: u64,
    /// Events of evicted roots (gone from every cluster count).
    pub root_evicted_events: u64,
    /// Messages cut to `max_message_bytes`.
    pub truncated: u64,
    /// Blank messages ignored.
    pub blank: u64,
    /// Events that reported a failure already counted in their trace (echoes).
    pub echo_events: u64,
    /// (Error kind, trace) pairs forgotten because `recent_traces` was reached; a later echo
    /// of one of them counted as a failure of its own.
    pub recent_traces_evicted: u64,
}

/// Filters of [`Engine::clusters`].
#[derive(Debug, Clone, Default)]
pub struct ClusterQuery {
    /// Only clusters with events in the last this many seconds (and count those).
    pub window_secs: Option<u64>,
    /// Only clusters seen from this service.
    pub service: Option<String>,
    /// Only emerging clusters.
    pub emerging_only: bool,
    /// Only clusters whose canonical root or a template contains this text (case-insensitive).
    pub text: Option<String>,
    /// At most this many rows (0: no limit).
    pub limit: usize,
    /// "Now", Unix nanoseconds (windows end here).
    pub now_unix_nanos: i64,
}

/// One row of the cluster list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Stable id.
    pub id: ClusterId,
    /// The innermost error, masked: what the id is a hash of.
    pub canonical: String,
    /// The name shown to people (API, dashboard, `/metrics`): the cluster's most informative
    /// template with typed placeholders (`<ip:port>`, `<duration>`, ...). The most frequent
    /// template, unless one at least half as frequent says more (more constant text): it
    /// shows what most events look like, and the call or peer that failed when that is known.
    pub name: String,
    /// The most frequent template of the cluster (the full masked message, typed
    /// placeholders).
    pub example_template: String,
    /// Failures ever: occurrences, one per trace however many records reported it.
    pub count: u64,
    /// Reports ever (log records and error spans), echoes included.
    pub reports: u64,
    /// Occurrences in the query window (all of them without a window).
    pub window_count: u64,
    /// Occurrences in the last minute before "now" (from the per-second counts; 0 after a
    /// restart until new events arrive): the current rate per minute.
    pub last_minute_count: u64,
    /// First event, Unix nanoseconds.
    pub first_seen_unix_nanos: i64,
    /// Last event, Unix nanoseconds.
    pub last_seen_unix_nanos: i64,
    /// Services it was seen from.
    pub services: Vec<String>,
    /// Most severe severity seen.
    pub severity: String,
    /// Number of templates.
    pub templates: usize,
    /// Whether and why it is emerging now.
    pub emergence: Option<Emergence>,
}

/// One template of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSummary {
    /// Stable id.
    pub id: TemplateId,
    /// Masked text.
    pub text: String,
    /// Reports of this shape (echoes included: a template is a shape of report).
    pub count: u64,
    /// Services that wrote it, with their reports, most first (at most
    /// `MAX_TEMPLATE_SERVICES` = 8 per template key).
    pub services: Vec<(String, u64)>,
    /// First event, Unix nanoseconds.
    pub first_seen_unix_nanos: i64,
    /// Last event, Unix nanoseconds.
    pub last_seen_unix_nanos: i64,
}

/// A cluster's newest samples and ids ([`Engine::cluster_samples`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSamples {
    /// Its current id.
    pub id: ClusterId,
    /// Ids it had before, as [`ClusterDetail::former_ids`].
    pub former_ids: Vec<ClusterId>,
    /// Its newest samples, newest first, as [`ClusterDetail::samples`].
    pub samples: Vec<Sample>,
}

/// Everything about one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterDetail {
    /// The list row.
    pub summary: ClusterSummary,
    /// Ids the cluster had before (merged or renamed away; each an alias of `summary.id`),
    /// newest first, at most [`MAX_FORMER_IDS`]: what older links and tags hold.
    pub former_ids: Vec<ClusterId>,
    /// Its roots (innermost error kinds), most frequent first.
    pub roots: Vec<(String, u64)>,
    /// Its templates, most frequent first.
    pub templates: Vec<TemplateSummary>,
    /// Most frequent parameter values (masked values of its messages).
    pub top_values: Vec<(String, u64)>,
    /// Parameter values seen in all (those beyond the counted distinct values included), so
    /// that `values_total - sum(top_values)` is what the top list leaves out.
    pub values_total: u64,
    /// Occurrences each kind of source reported (an occurrence seen in a log line and in a
    /// span counts in both).
    pub sources: Vec<(EventSource, u64)>,
    /// Events per minute: (minute start, Unix seconds; count), oldest first.
    pub per_minute: Vec<(i64, u64)>,
    /// Events per second over the last [`SECOND_HISTORY`] seconds that had events: (Unix
    /// second, count), oldest first, seconds without events left out. Not persisted: empty
    /// after a restart, like the node counters' history.
    pub per_second: Vec<(i64, u64)>,
    /// Occurrences each service reported (an occurrence echoed by the caller counts for
    /// both services).
    pub services: Vec<(String, u64)>,
    /// Events per severity.
    pub severities: Vec<(String, u64)>,
    /// Sample messages with their trace ids, newest first.
    pub samples: Vec<Sample>,
    /// The top application frames of the stacks its reports carried, most frequent first
    /// (at most `top_values`; not persisted: empty after a restart until new stacks arrive).
    pub frames: Vec<(String, u64)>,
    /// Reports that carried a frame, those beyond the listed ones included.
    pub frames_total: u64,
    /// The latest stack one of its reports carried (cut to 16 KiB), with its trace id.
    pub stack: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct KeyStats {
    pub(crate) count: u64,
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) root: RootIndex,
    pub(crate) services: BTreeMap<String, u64>,
    /// The [`ParamKind`] codes of the key's placeholders, for display only (absent in
    /// snapshots written before kinds existed: those show `<*>`).
    pub(crate) kinds: String,
    /// Whether the key's reports only tell an HTTP error status
    /// ([`crate::root::reports_http_status`]), read from its first report after a start.
    pub(crate) status: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RootStats {
    pub(crate) count: u64,
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) minutes: VecDeque<(i64, u64)>,
    /// (Unix second, count) of the most recent seconds with events, oldest first, at most
    /// [`SECOND_HISTORY`] of them. Kept out of snapshots (see [`ClusterDetail::per_second`]).
    pub(crate) seconds: VecDeque<(i64, u32)>,
    pub(crate) services: BTreeMap<String, u64>,
    pub(crate) severities: BTreeMap<String, u64>,
    pub(crate) samples: VecDeque<Sample>,
    pub(crate) values: HashMap<String, u64>,
    /// All parameter values counted, including those beyond the `values` table.
    pub(crate) values_total: u64,
    /// Reports, echoes included (`count` is occurrences).
    pub(crate) reports: u64,
    /// Occurrences per source that reported them.
    pub(crate) sources: BTreeMap<EventSource, u64>,
    /// Top application frames of the stacks reported, bounded like `values`.
    pub(crate) frames: HashMap<String, u64>,
    pub(crate) frames_total: u64,
    /// The latest stack reported, with its trace id.
    pub(crate) stack: Option<(String, Option<String>)>,
}

struct State {
    config: ClusteringConfig,
    miner: TemplateMiner,
    masked: MaskedLine,
    keys: Vec<KeyStats>,
    roots: RootClusters,
    root_stats: Vec<RootStats>,
    recent: RecentTraces,
    counters: EngineCounters,
    /// Cluster ids retired by re-runs, evictions and migrations, to their successors.
    cluster_aliases: AliasMap<ClusterId>,
    /// Bumped when roots are renumbered (evicted), so that the root references the
    /// occurrence counting keeps ([`RootRef`]) never touch another root.
    root_generation: u64,
}

/// The clustering engine (see the module documentation).
pub struct Engine {
    state: Mutex<State>,
    /// What restoring an older snapshot format changed, if it did.
    migration: Option<Migration>,
}

impl Engine {
    /// An empty engine.
    pub fn new(config: ClusteringConfig) -> Self {
        let state = State {
            miner: TemplateMiner::new(config.min_distinct_words),
            roots: RootClusters::new(vector_params(&config)),
            recent: RecentTraces::new(config.recent_traces),
            config,
            masked: MaskedLine::new(),
            keys: Vec::new(),
            root_stats: Vec::new(),
            counters: EngineCounters::default(),
            cluster_aliases: AliasMap::new(MAX_CLUSTER_ALIASES),
            root_generation: 0,
        };
        Engine {
            state: Mutex::new(state),
            migration: None,
        }
    }

    /// Clusters one event from a log file; see [`observe_from`](Self::observe_from).
    pub fn observe(&self, event: &ErrorEvent<'_>) -> Observation {
        self.observe_from(event, EventSource::FileLog)
    }

    /// Clusters one event reported by `source` and returns its template and cluster. Within
    /// one trace, a root counts once however many events report it (see the module
    /// documentation); the echoes only add to the sources and services it was seen in.
    pub fn observe_from(&self, event: &ErrorEvent<'_>, source: EventSource) -> Observation {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        s.counters.events += 1;
        let limit = s.config.max_message_bytes;
        if event.text.len() > limit {
            s.counters.truncated += 1;
        }
        let text = cut(event.text, limit);
        if text.trim().is_empty() {
            s.counters.blank += 1;
            return Observation {
                template: None,
                cluster: None,
                echo: false,
            };
        }
        s.masked.mask(text);
        let key = match s.miner.find(&s.masked) {
            Some(k) => k,
            None => match s.admit(text) {
                Some(k) => k,
                None => {
                    s.counters.other_events += 1;
                    return Observation {
                        template: None,
                        cluster: None,
                        echo: false,
                    };
                }
            },
        };
        let t = event.time_unix_nanos;
        let ks = &mut s.keys[key as usize];
        ks.count += 1;
        ks.last = ks.last.max(t);
        ks.first = ks.first.min(t);
        if let Some(service) = event.service {
            bump_bounded(&mut ks.services, service, MAX_TEMPLATE_SERVICES);
        }
        let root = ks.root;
        let kind = match *ks.status.get_or_insert_with(|| reports_http_status(text)) {
            true => ReportKind::Status,
            false => ReportKind::Failure,
        };
        let cluster = s.roots.cluster_of(root);
        let cfg = &s.config;
        let rs = &mut s.root_stats[root as usize];
        rs.reports += 1;
        bump_bounded(&mut rs.severities, event.severity, 16);
        for &(a, b) in &s.masked.params {
            let value = &text[a..b];
            rs.values_total += 1;
            if let Some(c) = rs.values.get_mut(value) {
                *c += 1;
            } else if rs.values.len() < cfg.top_values {
                rs.values.insert(value.to_string(), 1);
            }
        }
        let evicted_before = s.recent.evicted;
        let here = RootRef {
            root,
            generation: s.root_generation,
        };
        let mut retractions = Vec::new();
        let report = s.recent.report_kind(
            cluster,
            event.trace_id,
            source,
            event.service,
            (kind, here, t),
            &mut retractions,
        );
        s.counters.recent_traces_evicted += s.recent.evicted - evicted_before;
        s.retract(&retractions, root);
        // A folded status report adds where its trace's failure was seen.
        let seen_root = match report.folded_into {
            Some((_, r)) => s.current_root(r),
            None => Some(root),
        };
        if let Some(seen_root) = seen_root {
            let top_values = s.config.top_values;
            let rs = &mut s.root_stats[seen_root as usize];
            // Every report's stack counts, the echoes' too: the record with the stack is
            // often not the failure's first report (its span arrives first).
            if let Some(frame) = event.frame {
                rs.frames_total += 1;
                if let Some(c) = rs.frames.get_mut(frame) {
                    *c += 1;
                } else if rs.frames.len() < top_values {
                    rs.frames.insert(frame.to_string(), 1);
                }
            }
            if let Some(stack) = event.stack {
                rs.stack = Some((
                    cut(stack, MAX_STACK_BYTES).to_string(),
                    event.trace_id.map(str::to_string),
                ));
            }
            if report.new_source {
                *rs.sources.entry(source).or_insert(0) += 1;
            }
            if report.new_service {
                if let Some(service) = event.service {
                    bump_bounded(&mut rs.services, service, MAX_SERVICES);
                }
            }
        }
        let observation = Observation {
            template: Some(s.miner.template_of(key).0),
            cluster: Some(report.folded_into.map_or(cluster, |(c, _)| c)),
            echo: !report.first,
        };
        if !report.first {
            s.counters.echo_events += 1;
            return observation;
        }
        let cfg = &s.config;
        let rs = &mut s.root_stats[root as usize];
        rs.count += 1;
        rs.first = rs.first.min(t);
        rs.last = rs.last.max(t);
        let minute = t.div_euclid(NANOS_PER_MIN);
        match rs.minutes.iter_mut().rev().find(|(m, _)| *m == minute) {
            Some(slot) => slot.1 += 1,
            None => {
                rs.minutes.push_back((minute, 1));
                rs.minutes.make_contiguous().sort_unstable_by_key(|e| e.0);
                while rs.minutes.len() > cfg.history_minutes.max(2) {
                    rs.minutes.pop_front();
                }
            }
        }
        count_second(&mut rs.seconds, t.div_euclid(NANOS_PER_SEC));
        if cfg.samples_per_cluster > 0 {
            if rs.samples.len() >= cfg.samples_per_cluster {
                rs.samples.pop_front();
            }
            rs.samples.push_back(Sample {
                message: cut(text, 2048).to_string(),
                service: event.service.map(str::to_string),
                trace_id: event.trace_id.map(str::to_string),
                span_id: event.span_id.map(str::to_string),
                time_unix_nanos: t,
            });
        }
        observation
    }

    /// Background work: consolidates templates and re-runs DBSCAN over the roots when new
    /// ones arrived. Holds the lock only to copy the roots and to adopt the result.
    pub fn maintain(&self) {
        let copy = {
            let mut s = self.state.lock();
            if s.miner.pending() > 0 {
                s.miner.consolidate();
            }
            if s.roots.since_rerun() == 0 {
                return;
            }
            s.roots.clone()
        };
        let mut copy = copy;
        copy.rerun();
        let mut s = self.state.lock();
        let before = s.roots.id_table();
        s.roots.adopt(copy);
        s.alias_retired(&before, None);
    }

    /// Clusters matching `query`, by window count (then total count) descending.
    pub fn clusters(&self, query: &ClusterQuery) -> Vec<ClusterSummary> {
        let s = self.state.lock();
        let keys_by_root = s.keys_by_root();
        let mut rows: Vec<ClusterSummary> = s
            .groups()
            .into_values()
            .filter_map(|roots| s.summary(&roots, &keys_by_root, query))
            .collect();
        rows.sort_by(|a, b| {
            b.window_count
                .cmp(&a.window_count)
                .then(b.count.cmp(&a.count))
                .then(a.id.cmp(&b.id))
        });
        if query.limit > 0 {
            rows.truncate(query.limit);
        }
        rows
    }

    /// One cluster in detail, `None` when unknown. An id retired by a merge or a rename
    /// gives the cluster that took its place (whose own id the detail carries).
    pub fn cluster(&self, id: ClusterId, now_unix_nanos: i64) -> Option<ClusterDetail> {
        let s = self.state.lock();
        let mut groups = s.groups();
        let id = s
            .cluster_aliases
            .resolve(id, |id| groups.contains_key(&id))?;
        let former_ids =
            s.cluster_aliases
                .retired_into(id, |id| groups.contains_key(&id), MAX_FORMER_IDS);
        let roots = groups.remove(&id)?;
        let query = ClusterQuery {
            now_unix_nanos,
            ..ClusterQuery::default()
        };
        let summary = s.summary(&roots, &s.keys_by_root(), &query)?;
        let mut root_rows: Vec<(String, u64)> = roots
            .iter()
            .map(|&r| {
                (
                    s.roots.root_text(r).to_string(),
                    s.root_stats[r as usize].count,
                )
            })
            .collect();
        root_rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        let mut templates: HashMap<TemplateId, TemplateSummary> = HashMap::new();
        for (k, ks) in s.keys.iter().enumerate() {
            if !roots.contains(&ks.root) || ks.count == 0 {
                continue;
            }
            let (id, _) = s.miner.template_of(k as KeyIndex);
            let e = templates.entry(id).or_insert_with(|| TemplateSummary {
                id,
                text: s.display(k as KeyIndex),
                count: 0,
                services: Vec::new(),
                first_seen_unix_nanos: ks.first,
                last_seen_unix_nanos: ks.last,
            });
            e.count += ks.count;
            e.first_seen_unix_nanos = e.first_seen_unix_nanos.min(ks.first);
            e.last_seen_unix_nanos = e.last_seen_unix_nanos.max(ks.last);
            // Several keys can share a template id (consolidated shapes): sum their services.
            for (service, c) in &ks.services {
                match e.services.iter_mut().find(|(s, _)| s == service) {
                    Some(slot) => slot.1 += c,
                    None => e.services.push((service.clone(), *c)),
                }
            }
        }
        let mut templates: Vec<TemplateSummary> = templates.into_values().collect();
        for t in &mut templates {
            t.services
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        templates.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        let mut values: HashMap<&str, u64> = HashMap::new();
        let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
        let mut per_second: BTreeMap<i64, u64> = BTreeMap::new();
        let mut services: BTreeMap<&str, u64> = BTreeMap::new();
        let mut severities: BTreeMap<&str, u64> = BTreeMap::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut values_total = 0u64;
        let mut sources: BTreeMap<EventSource, u64> = BTreeMap::new();
        let mut frames: HashMap<&str, u64> = HashMap::new();
        let mut frames_total = 0u64;
        let mut stack: Option<(i64, &(String, Option<String>))> = None;
        for &r in &roots {
            let rs = &s.root_stats[r as usize];
            values_total += rs.values_total;
            frames_total += rs.frames_total;
            for (v, c) in &rs.frames {
                *frames.entry(v).or_insert(0) += c;
            }
            if let Some(st) = &rs.stack {
                if stack.is_none_or(|(last, _)| rs.last > last) {
                    stack = Some((rs.last, st));
                }
            }
            for (source, c) in &rs.sources {
                *sources.entry(*source).or_insert(0) += c;
            }
            for (v, c) in &rs.values {
                *values.entry(v).or_insert(0) += c;
            }
            for &(m, c) in &rs.minutes {
                *per_minute.entry(m * 60).or_insert(0) += c;
            }
            for &(sec, c) in &rs.seconds {
                *per_second.entry(sec).or_insert(0) += u64::from(c);
            }
            for (v, c) in &rs.services {
                *services.entry(v).or_insert(0) += c;
            }
            for (v, c) in &rs.severities {
                *severities.entry(v).or_insert(0) += c;
            }
            samples.extend(rs.samples.iter().cloned());
        }
        samples.sort_by_key(|s| std::cmp::Reverse(s.time_unix_nanos));
        samples.truncate(s.config.samples_per_cluster.max(1) * 2);
        Some(ClusterDetail {
            summary,
            former_ids,
            roots: root_rows,
            templates,
            // Snapshots written before `values_total` existed: at least what is listed.
            values_total: values_total.max(values.values().sum::<u64>()),
            top_values: top(values, 10),
            sources: sources.into_iter().collect(),
            per_minute: per_minute.into_iter().collect(),
            per_second: per_second.into_iter().collect(),
            services: top(services, MAX_SERVICES),
            severities: top(severities, 16),
            samples,
            frames: top(frames, s.config.top_values),
            frames_total,
            stack: stack.map(|(_, st)| st.clone()),
        })
    }

    /// The newest samples of one cluster (as [`cluster`](Self::cluster) lists them) with its
    /// current and former ids, `None` when unknown: what the diagnosis reads of each pattern
    /// it judges, every run, without the detail's pass over every key of the engine.
    pub fn cluster_samples(&self, id: ClusterId) -> Option<ClusterSamples> {
        let s = self.state.lock();
        let mut groups = s.groups();
        let id = s
            .cluster_aliases
            .resolve(id, |id| groups.contains_key(&id))?;
        let former_ids =
            s.cluster_aliases
                .retired_into(id, |id| groups.contains_key(&id), MAX_FORMER_IDS);
        let roots = groups.remove(&id)?;
        let mut samples: Vec<Sample> = roots
            .iter()
            .flat_map(|&r| s.root_stats[r as usize].samples.iter().cloned())
            .collect();
        samples.sort_by_key(|s| std::cmp::Reverse(s.time_unix_nanos));
        samples.truncate(s.config.samples_per_cluster.max(1) * 2);
        Some(ClusterSamples {
            id,
            former_ids,
            samples,
        })
    }

    /// Emerging clusters now, highest score first.
    pub fn emerging(&self, now_unix_nanos: i64, limit: usize) -> Vec<ClusterSummary> {
        self.clusters(&ClusterQuery {
            emerging_only: true,
            limit: 0,
            now_unix_nanos,
            ..ClusterQuery::default()
        })
        .tap_sort()
        .into_iter()
        .take(if limit == 0 { usize::MAX } else { limit })
        .collect()
    }

    /// The current id of a template id, following merges (aliases survive consolidation,
    /// eviction and restarts); `None` when the id was never seen or its alias left the bound.
    pub fn resolve_template(&self, id: TemplateId) -> Option<TemplateId> {
        self.state.lock().miner.resolve(id)
    }

    /// The cluster that holds the template `id` now (following template merges, see
    /// [`resolve_template`](Self::resolve_template)); `None` when the template is unknown or
    /// no longer counted. Cost: one pass over the template keys.
    pub fn cluster_of_template(&self, id: TemplateId) -> Option<ClusterId> {
        let s = self.state.lock();
        let template = s.miner.resolve(id)?;
        let (_, key) =
            s.keys.iter().enumerate().find(|&(k, ks)| {
                ks.count > 0 && s.miner.template_of(k as KeyIndex).0 == template
            })?;
        Some(s.roots.cluster_of(key.root))
    }

    /// The current id of a cluster id, following merges and renames (aliases survive
    /// re-runs, evictions, restarts and the format-1 migration); `None` when the id was never
    /// seen, its cluster left (evicted), or its alias left the bound.
    pub fn resolve_cluster(&self, id: ClusterId) -> Option<ClusterId> {
        let s = self.state.lock();
        s.cluster_aliases.resolve(id, |id| s.roots.is_live(id))
    }

    /// What restoring the snapshot changed when it was in an older format (the agent logs
    /// it at start); `None` for a fresh engine or a current-format snapshot.
    pub fn migration(&self) -> Option<&Migration> {
        self.migration.as_ref()
    }

    /// What the bounds did so far, plus the current sizes.
    pub fn counters(&self) -> EngineCounts {
        let s = self.state.lock();
        EngineCounts {
            bounds: s.counters,
            templates: s.miner.template_count(),
            clusters: s.groups().len(),
        }
    }

    /// The state as a snapshot value, for a caller that stores it inside a larger atomic
    /// file (the agent keeps it together with the tail offsets it was derived from).
    pub fn snapshot(&self) -> Snapshot {
        let s = self.state.lock();
        let (labels, canonical) = s.roots.labels();
        let c = s.counters;
        Snapshot::V2(SnapshotV2 {
            keys: s
                .keys
                .iter()
                .enumerate()
                .map(|(k, ks)| KeyV1 {
                    shape: s.miner.key_text(k as KeyIndex).to_string(),
                    stats: KeyStatsV1 {
                        count: ks.count,
                        first: ks.first,
                        last: ks.last,
                        root: ks.root,
                        services: ks.services.clone(),
                        kinds: ks.kinds.clone(),
                    },
                })
                .collect(),
            roots: s
                .root_stats
                .iter()
                .enumerate()
                .map(|(r, rs)| RootV1 {
                    text: s.roots.root_text(r as RootIndex).to_string(),
                    label: labels[r],
                    stats: RootStatsV1 {
                        count: rs.count,
                        first: rs.first,
                        last: rs.last,
                        minutes: rs.minutes.iter().copied().collect(),
                        services: rs.services.clone(),
                        severities: rs.severities.clone(),
                        samples: rs
                            .samples
                            .iter()
                            .map(|x| SampleV1 {
                                message: x.message.clone(),
                                service: x.service.clone(),
                                trace_id: x.trace_id.clone(),
                                span_id: x.span_id.clone(),
                                time_unix_nanos: x.time_unix_nanos,
                            })
                            .collect(),
                        values: rs.values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                        values_total: rs.values_total,
                        reports: rs.reports,
                        sources: rs
                            .sources
                            .iter()
                            .map(|(source, c)| (source.name().to_owned(), *c))
                            .collect(),
                    },
                })
                .collect(),
            canonical,
            counters: CountersV1 {
                events: c.events,
                other_events: c.other_events,
                templates_refused: c.templates_refused,
                templates_evicted: c.templates_evicted,
                evicted_events: c.evicted_events,
                roots_refused: c.roots_refused,
                roots_evicted: c.roots_evicted,
                root_evicted_events: c.root_evicted_events,
                truncated: c.truncated,
                blank: c.blank,
                echo_events: c.echo_events,
                recent_traces_evicted: c.recent_traces_evicted,
            },
            template_aliases: s
                .miner
                .aliases()
                .into_iter()
                .map(|(from, to)| (from.to_string(), to.to_string()))
                .collect(),
            cluster_aliases: s
                .cluster_aliases
                .iter()
                .map(|(from, to)| (from.to_string(), to.to_string()))
                .collect(),
        })
    }

    /// An engine restored from a snapshot value taken with [`snapshot`](Self::snapshot):
    /// same template and cluster ids, same counts, same aliases. A snapshot that contradicts
    /// itself is refused whole ([`SnapshotError::Corrupt`]), never half applied.
    ///
    /// A format-1 snapshot (ids by arrival order) is migrated: its clusters are re-run under
    /// the rule-based ids at once, every id that changed becomes an alias of its new id, and
    /// [`migration`](Self::migration) says how many changed.
    pub fn from_snapshot(
        snapshot: Snapshot,
        config: ClusteringConfig,
    ) -> Result<Engine, SnapshotError> {
        let from_format = snapshot.format();
        let snap: SnapshotV2 = match snapshot {
            Snapshot::V1(v1) => v1.into(),
            Snapshot::V2(v2) => v2,
        };
        let mut engine = Engine::new(config);
        let mut migration = None;
        {
            let mut s = engine.state.lock();
            let s = &mut *s;
            for root in &snap.roots {
                if s.roots.find(&root.text).is_some() {
                    return Err(SnapshotError::Corrupt(format!(
                        "the root {:?} is listed twice",
                        root.text
                    )));
                }
                s.roots.insert(&root.text);
                let st = &root.stats;
                s.root_stats.push(RootStats {
                    count: st.count,
                    first: st.first,
                    last: st.last,
                    minutes: st.minutes.iter().copied().collect(),
                    seconds: VecDeque::new(),
                    services: st.services.clone(),
                    severities: st.severities.clone(),
                    samples: st
                        .samples
                        .iter()
                        .map(|x| Sample {
                            message: x.message.clone(),
                            service: x.service.clone(),
                            trace_id: x.trace_id.clone(),
                            span_id: x.span_id.clone(),
                            time_unix_nanos: x.time_unix_nanos,
                        })
                        .collect(),
                    values: st.values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    values_total: st.values_total,
                    reports: st.reports.max(st.count),
                    sources: st
                        .sources
                        .iter()
                        .filter_map(|(name, c)| Some((EventSource::from_name(name)?, *c)))
                        .collect(),
                    // Stacks and frames are not persisted (see `ClusterDetail::frames`).
                    ..RootStats::default()
                });
            }
            let labels: Vec<u32> = snap.roots.iter().map(|r| r.label).collect();
            if !s.roots.restore_labels(&labels, &snap.canonical) {
                s.roots.rerun();
            }
            for key in &snap.keys {
                if key.stats.root as usize >= s.root_stats.len() {
                    return Err(SnapshotError::Corrupt(
                        "a template names an unknown root".into(),
                    ));
                }
                s.miner.insert_shape(&key.shape);
                s.keys.push(KeyStats {
                    count: key.stats.count,
                    first: key.stats.first,
                    last: key.stats.last,
                    root: key.stats.root,
                    services: key.stats.services.clone(),
                    kinds: key.stats.kinds.clone(),
                    status: None,
                });
            }
            s.miner.consolidate();
            let aliases: Vec<(TemplateId, TemplateId)> = snap
                .template_aliases
                .iter()
                .filter_map(|(from, to)| {
                    Some((
                        TemplateId::try_from(from.clone()).ok()?,
                        TemplateId::try_from(to.clone()).ok()?,
                    ))
                })
                .collect();
            s.miner.restore_aliases(&aliases);
            for (from, to) in &snap.cluster_aliases {
                if let (Ok(from), Ok(to)) = (
                    ClusterId::try_from(from.clone()),
                    ClusterId::try_from(to.clone()),
                ) {
                    s.cluster_aliases.insert(from, to);
                }
            }
            if from_format < CURRENT_FORMAT {
                // Format 1 named clusters after their oldest root: re-run now under the rule,
                // so the ids are right from the first query, and alias every changed id.
                let before = s.roots.id_table();
                s.roots.rerun();
                let changed = s.alias_retired(&before, None);
                migration = Some(Migration {
                    from_format,
                    to_format: CURRENT_FORMAT,
                    cluster_ids_changed: changed,
                });
            }
            let c = snap.counters;
            s.counters = EngineCounters {
                events: c.events,
                other_events: c.other_events,
                templates_refused: c.templates_refused,
                templates_evicted: c.templates_evicted,
                evicted_events: c.evicted_events,
                roots_refused: c.roots_refused,
                roots_evicted: c.roots_evicted,
                root_evicted_events: c.root_evicted_events,
                truncated: c.truncated,
                blank: c.blank,
                echo_events: c.echo_events,
                recent_traces_evicted: c.recent_traces_evicted,
            };
        }
        engine.migration = migration;
        Ok(engine)
    }
}

/// Counts one event in `second` (Unix seconds). Events arrive mostly in order, so the usual
/// case is a bump of the last entry or a push; a late event is placed by binary search. The
/// oldest seconds leave once more than [`SECOND_HISTORY`] are held.
fn count_second(seconds: &mut VecDeque<(i64, u32)>, second: i64) {
    match seconds.back_mut() {
        Some(last) if last.0 == second => last.1 = last.1.saturating_add(1),
        Some(last) if last.0 > second => {
            let at = seconds.partition_point(|&(s, _)| s < second);
            match seconds.get_mut(at) {
                Some(slot) if slot.0 == second => slot.1 = slot.1.saturating_add(1),
                _ => seconds.insert(at, (second, 1)),
            }
        }
        _ => seconds.push_back((second, 1)),
    }
    while seconds.len() > SECOND_HISTORY {
        seconds.pop_front();
    }
}

trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<ClusterSummary> {
    fn tap_sort(mut self) -> Self {
        self.sort_by(|a, b| {
            let sa = a.emergence.as_ref().map_or(0.0, |e| e.score);
            let sb = b.emergence.as_ref().map_or(0.0, |e| e.score);
            sb.total_cmp(&sa).then(a.id.cmp(&b.id))
        });
        self
    }
}

impl State {
    /// The index of a root referenced before, `None` when roots were renumbered since.
    fn current_root(&self, r: RootRef) -> Option<RootIndex> {
        (r.generation == self.root_generation && (r.root as usize) < self.root_stats.len())
            .then_some(r.root)
    }

    /// Takes back the occurrences of status reports that turned out to echo the failure
    /// of their trace (see [`crate::occurrence`]): out of their roots' counts, per-minute
    /// and per-second series and sources; their sources go to the failure's root.
    fn retract(&mut self, retractions: &[Retraction], failure_root: RootIndex) {
        for r in retractions {
            self.counters.echo_events += 1;
            let Some(root) = self.current_root(r.root) else {
                continue;
            };
            let rs = &mut self.root_stats[root as usize];
            rs.count = rs.count.saturating_sub(1);
            let minute = r.time_unix_nanos.div_euclid(NANOS_PER_MIN);
            if let Some(slot) = rs.minutes.iter_mut().find(|(m, _)| *m == minute) {
                slot.1 = slot.1.saturating_sub(1);
            }
            let second = r.time_unix_nanos.div_euclid(NANOS_PER_SEC);
            if let Some(slot) = rs.seconds.iter_mut().find(|(at, _)| *at == second) {
                slot.1 = slot.1.saturating_sub(1);
            }
            for source in sources_of(r.sources) {
                if let Some(n) = rs.sources.get_mut(&source) {
                    *n = n.saturating_sub(1);
                }
            }
            let failure = &mut self.root_stats[failure_root as usize];
            for source in sources_of(r.new_failure_sources) {
                *failure.sources.entry(source).or_insert(0) += 1;
            }
        }
    }

    /// Admits a new shape (and its root); `None` when a bound refuses it.
    fn admit(&mut self, text: &str) -> Option<KeyIndex> {
        if self.keys.len() >= self.config.max_templates {
            self.evict_keys();
        }
        if self.keys.len() >= self.config.max_templates {
            self.counters.templates_refused += 1;
            return None;
        }
        let root_text = root_signature(text);
        let root = match self.roots.find(&root_text) {
            Some(r) => r,
            None => {
                if self.roots.len() >= self.config.max_clusters {
                    self.evict_roots();
                }
                if self.roots.len() >= self.config.max_clusters {
                    self.counters.roots_refused += 1;
                    return None;
                }
                let r = self.roots.insert(&root_text);
                self.root_stats.push(RootStats {
                    first: i64::MAX,
                    last: i64::MIN,
                    ..RootStats::default()
                });
                r
            }
        };
        let (key, _) = self.miner.insert(&self.masked);
        self.keys.push(KeyStats {
            count: 0,
            first: i64::MAX,
            last: i64::MIN,
            root,
            services: BTreeMap::new(),
            kinds: self.masked.kinds.iter().map(|k| k.code()).collect(),
            status: None,
        });
        Some(key)
    }

    /// Evicts the tenth of the template keys with the fewest events (oldest first among
    /// equals) and rebuilds the miner from the others. Template ids are content hashes, so
    /// the kept templates keep their ids; the clusters keep their counts.
    fn evict_keys(&mut self) {
        let n = self.keys.len();
        if n == 0 {
            return;
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&k| (self.keys[k].count, self.keys[k].last));
        let mut gone = vec![false; n];
        for &k in &order[..(n / 10).max(1)] {
            gone[k] = true;
            self.counters.templates_evicted += 1;
            self.counters.evicted_events += self.keys[k].count;
        }
        self.drop_keys(&gone);
    }

    /// Rebuilds the miner and the key table without the keys marked in `gone`.
    fn drop_keys(&mut self, gone: &[bool]) {
        let keep: Vec<bool> = gone.iter().map(|g| !g).collect();
        self.miner.retain(&keep);
        let mut keys = Vec::with_capacity(self.keys.len());
        for (k, ks) in std::mem::take(&mut self.keys).into_iter().enumerate() {
            if keep[k] {
                keys.push(ks);
            }
        }
        self.keys = keys;
    }

    /// Evicts a tenth of the roots: first those not seen within the emergence window and
    /// baseline (they cannot be emerging, and their history has the least to say about now),
    /// fewest events first, then, if the recent ones fill the bound on their own, the recent
    /// ones with the fewest events. Their templates go with them. The other roots keep their
    /// clusters and ids, except a cluster whose canonical root left: it takes the id of its
    /// new canonical root, and the old id stays an alias of it.
    fn evict_roots(&mut self) {
        let n = self.root_stats.len();
        if n == 0 {
            return;
        }
        let latest = self.root_stats.iter().map(|r| r.last).max().unwrap_or(0);
        let horizon = latest.saturating_sub(
            (self.config.window_secs + self.config.baseline_secs).saturating_mul(1_000_000_000)
                as i64,
        );
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&r| {
            let rs = &self.root_stats[r];
            (rs.last >= horizon, rs.count, rs.last)
        });
        let mut keep = vec![true; n];
        for &r in &order[..(n / 10).max(1)] {
            keep[r] = false;
            self.counters.roots_evicted += 1;
            self.counters.root_evicted_events += self.root_stats[r].count;
        }
        let before = self.roots.id_table();
        let map = self.roots.retain(&keep);
        self.root_generation += 1;
        self.alias_retired(&before, Some(&map));
        let mut stats = Vec::with_capacity(n);
        for (r, rs) in std::mem::take(&mut self.root_stats).into_iter().enumerate() {
            if keep[r] {
                stats.push(rs);
            }
        }
        self.root_stats = stats;
        let gone: Vec<bool> = self
            .keys
            .iter()
            .map(|k| map[k.root as usize].is_none())
            .collect();
        for (k, ks) in self.keys.iter_mut().enumerate() {
            if let Some(root) = map[ks.root as usize] {
                ks.root = root;
            } else {
                debug_assert!(gone[k]);
            }
        }
        self.drop_keys(&gone);
    }

    /// Records every cluster id that the regrouping since `before` retired as an alias of its
    /// successor; returns how many. `map` as in [`RootClusters::retired_ids`].
    fn alias_retired(&mut self, before: &IdTable, map: Option<&[Option<RootIndex>]>) -> usize {
        let retired = self.roots.retired_ids(before, map);
        for &(from, to) in &retired {
            self.cluster_aliases.insert(from, to);
        }
        retired.len()
    }

    /// The display form of a key's template (typed placeholders).
    fn display(&self, key: KeyIndex) -> String {
        let kinds: Vec<ParamKind> = self.keys[key as usize]
            .kinds
            .chars()
            .map(ParamKind::from_code)
            .collect();
        let (_, template) = self.miner.template_of(key);
        display_template(template, self.miner.key_text(key), &kinds)
    }

    /// Roots grouped by cluster id.
    fn groups(&self) -> HashMap<ClusterId, Vec<RootIndex>> {
        let mut groups: HashMap<ClusterId, Vec<RootIndex>> = HashMap::new();
        for r in 0..self.roots.len() as RootIndex {
            if self.root_stats[r as usize].count > 0 {
                groups.entry(self.roots.cluster_of(r)).or_default().push(r);
            }
        }
        groups
    }

    /// The keys of every root, so that a query touches each key once, not once per cluster.
    fn keys_by_root(&self) -> Vec<Vec<KeyIndex>> {
        let mut by_root = vec![Vec::new(); self.root_stats.len()];
        for (k, ks) in self.keys.iter().enumerate() {
            if ks.count > 0 {
                if let Some(list) = by_root.get_mut(ks.root as usize) {
                    list.push(k as KeyIndex);
                }
            }
        }
        by_root
    }

    fn summary(
        &self,
        roots: &[RootIndex],
        keys_by_root: &[Vec<KeyIndex>],
        q: &ClusterQuery,
    ) -> Option<ClusterSummary> {
        let first_root = *roots.first()?;
        let id = self.roots.cluster_of(first_root);
        let now_min = q.now_unix_nanos.div_euclid(NANOS_PER_MIN);
        let window_min = (self.config.window_secs / 60).max(1) as i64;
        let baseline_min = (self.config.baseline_secs / 60).max(1) as i64;
        let (mut count, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        let (mut reports, mut last_minute) = (0u64, 0u64);
        let now_sec = q.now_unix_nanos.div_euclid(NANOS_PER_SEC);
        let (mut in_query, mut current, mut baseline) = (0u64, 0u64, 0u64);
        let mut services: Vec<String> = Vec::new();
        let mut severity = "";
        let query_from = q.window_secs.map(|w| {
            q.now_unix_nanos
                .saturating_sub((w as i64).saturating_mul(1_000_000_000))
        });
        for &r in roots {
            let rs = &self.root_stats[r as usize];
            count += rs.count;
            reports += rs.reports.max(rs.count);
            last_minute += rs
                .seconds
                .iter()
                .rev()
                .skip_while(|(sec, _)| *sec > now_sec)
                .take_while(|(sec, _)| *sec > now_sec - RATE_WINDOW_SECS)
                .map(|&(_, c)| u64::from(c))
                .sum::<u64>();
            first = first.min(rs.first);
            last = last.max(rs.last);
            for &(m, c) in &rs.minutes {
                if m > now_min - window_min && m <= now_min {
                    current += c;
                } else if m > now_min - window_min - baseline_min && m <= now_min - window_min {
                    baseline += c;
                }
                if let Some(from) = query_from {
                    if m >= from.div_euclid(NANOS_PER_MIN) && m <= now_min {
                        in_query += c;
                    }
                }
            }
            for s in rs.services.keys() {
                if !services.contains(s) {
                    services.push(s.clone());
                }
            }
            for s in rs.severities.keys() {
                if severity_rank(s) > severity_rank(severity) {
                    severity = s;
                }
            }
        }
        if query_from.is_none() {
            in_query = count;
        }
        if let Some(service) = &q.service {
            if !services.iter().any(|s| s == service) {
                return None;
            }
        }
        if q.window_secs.is_some() && in_query == 0 {
            return None;
        }
        let canonical = self.roots.canonical_of(first_root).to_string();
        // Per template: events, and its most frequent key (whose kinds name the placeholders).
        let mut per_template: HashMap<TemplateId, (u64, KeyIndex, u64)> = HashMap::new();
        for &r in roots {
            for &k in keys_by_root.get(r as usize).map_or(&[][..], Vec::as_slice) {
                let (tid, _) = self.miner.template_of(k);
                let n = self.keys[k as usize].count;
                let e = per_template.entry(tid).or_insert((0, k, 0));
                e.0 += n;
                if n > e.2 || (n == e.2 && k < e.1) {
                    (e.1, e.2) = (k, n);
                }
            }
        }
        let mut ranked: Vec<(TemplateId, u64, KeyIndex)> = per_template
            .iter()
            .map(|(t, &(n, k, _))| (*t, n, k))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let example = ranked
            .first()
            .map(|&(_, _, k)| self.display(k))
            .unwrap_or_default();
        let top = ranked.first().map_or(0, |r| r.1);
        let name = ranked
            .iter()
            .filter(|r| r.1 * 2 >= top)
            .map(|&(_, _, k)| headline(&self.display(k)))
            .filter(|n| !n.is_empty())
            .max_by(|a, b| constant_len(a).cmp(&constant_len(b)).then(b.cmp(a)))
            .unwrap_or_else(|| canonical.clone());
        if let Some(text) = &q.text {
            let needle = text.to_lowercase();
            let hit = canonical.to_lowercase().contains(&needle)
                || name.to_lowercase().contains(&needle)
                || ranked
                    .iter()
                    .any(|&(_, _, k)| self.miner.template_of(k).1.to_lowercase().contains(&needle));
            if !hit {
                return None;
            }
        }
        let thresholds = Thresholds {
            window_min: window_min as f64,
            new_min_events: self.config.new_min_events,
            surge_min_ratio: self.config.surge_min_ratio,
            surge_max_p: self.config.surge_max_p,
        };
        let first_min = first.div_euclid(NANOS_PER_MIN);
        let is_new = first_min > now_min - window_min;
        let observed_baseline = (now_min - window_min - first_min).clamp(0, baseline_min) as f64;
        let emergence = judge(&thresholds, current, baseline, observed_baseline, is_new);
        if q.emerging_only && emergence.is_none() {
            return None;
        }
        Some(ClusterSummary {
            id,
            canonical,
            name,
            example_template: example,
            count,
            reports,
            window_count: in_query,
            last_minute_count: last_minute,
            first_seen_unix_nanos: first,
            last_seen_unix_nanos: last,
            services,
            severity: severity.to_string(),
            templates: per_template.len(),
            emergence,
        })
    }
}

/// Longest display name, in bytes: a name is read in a list row and a metric label.
const MAX_NAME_BYTES: usize = 240;

/// The first line of a template (up to a real or escaped `\n`: a stack trace follows a
/// panic message), cut to [`MAX_NAME_BYTES`] with an ellipsis.
fn headline(text: &str) -> String {
    let end = [text.find('\n'), text.find("\\n")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    let line = text[..end].trim_end();
    if line.len() <= MAX_NAME_BYTES {
        return line.to_string();
    }
    format!("{}…", cut(line, MAX_NAME_BYTES))
}

/// Characters of a display name that are not placeholders: how much it says.
fn constant_len(name: &str) -> usize {
    let mut n = name.len();
    let mut rest = name;
    while let Some(open) = rest.find('<') {
        match rest[open..].find('>') {
            Some(close) if rest[open + 1..open + close].bytes().all(|b| b != b' ') => {
                n -= close + 1;
                rest = &rest[open + close + 1..];
            }
            _ => rest = &rest[open + 1..],
        }
    }
    n
}

fn vector_params(config: &ClusteringConfig) -> VectorParams {
    VectorParams {
        eps: config.eps,
        ..VectorParams::default()
    }
}

fn bump_bounded(map: &mut BTreeMap<String, u64>, key: &str, max: usize) {
    if let Some(c) = map.get_mut(key) {
        *c += 1;
    } else if map.len() < max {
        map.insert(key.to_string(), 1);
    }
}

fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "" => 0,
        "trace" | "debug" => 1,
        "info" => 2,
        "warn" | "warning" => 3,
        "error" => 4,
        "fatal" | "critical" => 5,
        "panic" => 6,
        _ => 1,
    }
}

fn top<K: ToString>(items: impl IntoIterator<Item = (K, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = items.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = NANOS_PER_MIN;

    fn event<'a>(text: &'a str, service: &str, t: i64) -> ErrorEvent<'a> {
        ErrorEvent {
            text,
            service: Some(match service {
                "a" => "svc-a",
                _ => "svc-b",
            }),
            severity: "error",
            trace_id: None,
            span_id: None,
            time_unix_nanos: t,
            stack: None,
            frame: None,
        }
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn one_failure_reported_by_two_lines_and_two_spans_counts_once() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let traced = |text, service, t| ErrorEvent {
            trace_id: Some(TRACE),
            ..event(text, service, t)
        };
        // The callee's log line and error span, the caller's log line and error span.
        let callee_log = traced("write response: connection reset by peer", "b", t0);
        let first = engine.observe_from(&callee_log, EventSource::FileLog);
        let callee_span = traced("connection reset by peer", "b", t0 + 1);
        let caller_text = "GET http://10.0.0.2:8080/x: read tcp 10.0.0.1:5->10.0.0.2:8080: read: connection reset by peer";
        let caller_log = traced(caller_text, "a", t0 + 2);
        let caller_span = traced(caller_text, "a", t0 + 3);
        let echoes = [
            engine.observe_from(&callee_span, EventSource::Span),
            engine.observe_from(&caller_log, EventSource::FileLog),
            engine.observe_from(&caller_span, EventSource::Span),
        ];
        assert!(!first.echo);
        assert!(echoes.iter().all(|o| o.echo && o.cluster == first.cluster));
        // Another failed request of the same kind, in another trace, and one without a trace.
        let other = ErrorEvent {
            trace_id: Some("00f067aa0ba902b700f067aa0ba902b7"),
            ..event("connection reset by peer", "b", t0 + 4)
        };
        assert!(!engine.observe_from(&other, EventSource::Span).echo);
        assert!(
            !engine
                .observe(&event("connection reset by peer", "b", t0 + 5))
                .echo
        );
        assert!(
            !engine
                .observe(&event("connection reset by peer", "b", t0 + 6))
                .echo
        );

        let id = first.cluster.expect("clustered");
        let detail = engine.cluster(id, t0 + 10 * NANOS_PER_SEC).expect("known");
        assert_eq!(detail.summary.count, 4, "failures, not reports");
        assert_eq!(detail.summary.reports, 7);
        assert_eq!(detail.summary.last_minute_count, 4);
        assert_eq!(detail.per_second.iter().map(|p| p.1).sum::<u64>(), 4);
        assert_eq!(detail.samples.len(), 4);
        // The traced failure was seen in both sources and both services.
        assert_eq!(
            detail.sources,
            [(EventSource::FileLog, 3), (EventSource::Span, 2)]
        );
        assert_eq!(
            detail.services,
            [("svc-b".to_owned(), 4), ("svc-a".to_owned(), 1)]
        );
        // Templates count the reports of their own shape, with the services that wrote them.
        let caller = detail
            .templates
            .iter()
            .find(|t| t.text.starts_with("GET"))
            .expect("the caller's template");
        assert_eq!(caller.count, 2);
        assert_eq!(caller.services, [("svc-a".to_owned(), 2)]);
        let counters = engine.counters().bounds;
        assert_eq!(counters.echo_events, 3);
        assert_eq!(counters.events, 7);
    }

    #[test]
    fn a_status_echo_is_seen_by_its_traces_failure_in_either_order() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let in_trace = |trace, text, service, t| ErrorEvent {
            trace_id: Some(trace),
            ..event(text, service, t)
        };
        let failure = "upstream call failed: Get \"http://127.0.0.1:41234/users/7\": EOF";
        let span_502 = "HTTP 502 from GET /internal/checkout/:id";
        let caller_502 =
            "GET http://127.0.0.1:33125/internal/checkout/7: unexpected status 502 Bad Gateway";
        // Trace 1: the failure first, then its echoes up the chain.
        let t1 = "4bf92f3577b34da6a3ce929d0e0e4736";
        let eof = engine.observe_from(&in_trace(t1, failure, "b", t0), EventSource::FileLog);
        let echo = engine.observe_from(&in_trace(t1, span_502, "b", t0 + 1), EventSource::Span);
        let up = engine.observe_from(&in_trace(t1, caller_502, "a", t0 + 2), EventSource::FileLog);
        assert!(!eof.echo && echo.echo && up.echo);
        assert_eq!(
            echo.cluster, eof.cluster,
            "tagged with the failure's pattern"
        );
        // Trace 2: the echoes arrive first (another file, another exporter); the failure then
        // takes them back.
        let t2 = "00f067aa0ba902b700f067aa0ba902b7";
        let early = engine.observe_from(&in_trace(t2, span_502, "a", t0 + 3), EventSource::Span);
        assert!(!early.echo, "no failure known yet: it counts");
        let caller =
            engine.observe_from(&in_trace(t2, caller_502, "a", t0 + 4), EventSource::FileLog);
        assert!(!caller.echo);
        let late = engine.observe_from(&in_trace(t2, failure, "b", t0 + 5), EventSource::FileLog);
        assert!(!late.echo);
        assert!(
            engine
                .observe_from(&in_trace(t2, span_502, "b", t0 + 6), EventSource::Span)
                .echo
        );
        // Trace 3: a 502 and nothing else: the only word of that failure, it counts.
        let t3 = "0af7651916cd43dd8448eb211c80319c";
        let alone = engine.observe_from(&in_trace(t3, span_502, "b", t0 + 7), EventSource::Span);
        assert!(!alone.echo);

        let now = t0 + 10 * NANOS_PER_SEC;
        let detail = engine
            .cluster(eof.cluster.expect("clustered"), now)
            .expect("known");
        assert_eq!(detail.summary.count, 2, "one per failed request");
        assert_eq!(
            detail.sources,
            [(EventSource::FileLog, 2), (EventSource::Span, 2)],
            "seen in the echoes' sources too"
        );
        let status = engine
            .cluster(alone.cluster.expect("clustered"), now)
            .expect("known");
        assert_eq!(
            status.summary.count, 1,
            "only the trace without another failure"
        );
        assert_eq!(status.summary.last_minute_count, 1);
        assert_eq!(status.per_second.iter().map(|p| p.1).sum::<u64>(), 1);
        // The caller's 502 log lines echoed failures every time: no failure kind of their own.
        assert!(engine
            .cluster(caller.cluster.expect("clustered"), now)
            .is_none_or(|d| d.summary.id == eof.cluster.expect("clustered")));
        let listed: Vec<u64> = engine
            .clusters(&ClusterQuery {
                now_unix_nanos: now,
                ..ClusterQuery::default()
            })
            .iter()
            .map(|row| row.count)
            .collect();
        assert_eq!(
            listed.iter().sum::<u64>(),
            3,
            "three failed requests: {listed:?}"
        );
    }

    #[test]
    fn stacks_give_the_pattern_its_frames_and_latest_stack() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let text = "runtime error: index out of range [2] with length 0";
        let mut last = None;
        for (i, frame) in [
            "main.priceOf service.go:245",
            "main.priceOf service.go:245",
            "main.load db.go:9",
        ]
        .into_iter()
        .enumerate()
        {
            let stack = format!("goroutine {i} [running]:\n{frame}");
            last = engine
                .observe(&ErrorEvent {
                    stack: Some(&stack),
                    frame: Some(frame),
                    ..event(text, "b", t0 + i as i64)
                })
                .cluster;
        }
        engine.observe(&event(text, "b", t0 + 5));
        let detail = engine.cluster(last.expect("clustered"), t0).expect("known");
        assert_eq!(
            detail.frames,
            [
                ("main.priceOf service.go:245".to_owned(), 2),
                ("main.load db.go:9".to_owned(), 1)
            ]
        );
        assert_eq!(detail.frames_total, 3);
        assert_eq!(
            detail.stack.map(|(text, _)| text).as_deref(),
            Some("goroutine 2 [running]:\nmain.load db.go:9"),
            "the latest stack"
        );
    }

    #[test]
    fn two_roots_of_one_pattern_in_one_trace_count_once() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        // The CLIENT span's text and the caller's stdlib-log line with a logfmt tail: two
        // roots, which DBSCAN puts in one pattern.
        let span_text = "Get \"http://127.0.0.1:9/x\": context deadline exceeded";
        let line = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        let first = engine.observe(&event(span_text, "a", t0));
        engine.observe(&event(line, "a", t0));
        engine.maintain();
        let traced = |text, t| ErrorEvent {
            trace_id: Some(TRACE),
            ..event(text, "a", t)
        };
        let a = engine.observe_from(&traced(span_text, t0 + 1), EventSource::Span);
        let b = engine.observe_from(&traced(line, t0 + 2), EventSource::FileLog);
        assert_eq!(a.cluster, b.cluster, "one pattern");
        assert_eq!(first.cluster, a.cluster);
        assert!(!a.echo && b.echo);
        let detail = engine
            .cluster(a.cluster.expect("clustered"), t0 + NANOS_PER_SEC)
            .expect("known");
        assert_eq!(detail.roots.len(), 2);
        assert_eq!(detail.summary.count, 3, "two untraced, one traced failure");
        assert_eq!(detail.summary.reports, 4);
    }

    #[test]
    fn the_current_rate_is_the_last_minute_and_values_beyond_the_top_are_counted() {
        let config = ClusteringConfig {
            top_values: 2,
            ..ClusteringConfig::default()
        };
        let engine = Engine::new(config);
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        // Ten an hour ago... then three in the last minute.
        let mut id = None;
        for i in 0..10 {
            let text = format!("dial tcp 10.0.0.{i}:80: connect: connection refused");
            id = engine.observe(&event(&text, "a", t0 + i)).cluster;
        }
        let now = t0 + 60 * MIN;
        for i in 0..3 {
            let text = format!("dial tcp 10.0.0.{i}:80: connect: connection refused");
            engine.observe(&event(&text, "a", now - (i + 1) * NANOS_PER_SEC));
        }
        let rows = engine.clusters(&ClusterQuery {
            now_unix_nanos: now,
            ..ClusterQuery::default()
        });
        assert_eq!(rows[0].count, 13);
        assert_eq!(rows[0].last_minute_count, 3);
        let detail = engine.cluster(id.expect("clustered"), now).expect("known");
        // Thirteen addresses: two distinct values kept, all thirteen counted.
        assert_eq!(detail.values_total, 13);
        assert!(detail.top_values.iter().map(|v| v.1).sum::<u64>() < 13);
    }

    #[test]
    fn wrappers_and_services_share_a_cluster_with_samples_and_counts() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * 1_000_000_000;
        let a = engine.observe(&ErrorEvent {
            trace_id: Some(TRACE),
            ..event(
                "failed to call user service: Get \"http://u:80/1\": EOF",
                "a",
                t0,
            )
        });
        let b = engine.observe(&event("GetUser(42): EOF", "b", t0 + MIN));
        let c = engine.observe(&event("read body: unexpected EOF", "a", t0 + MIN));
        engine.maintain();
        assert_eq!(a.cluster, b.cluster);
        assert_ne!(a.cluster, c.cluster);
        let id = a.cluster.expect("clustered");
        let detail = engine.cluster(id, t0 + 2 * MIN).expect("known");
        assert_eq!(detail.summary.count, 2);
        assert_eq!(detail.summary.services, ["svc-a", "svc-b"]);
        assert_eq!(detail.samples.len(), 2);
        assert_eq!(detail.samples[1].trace_id.as_deref(), Some(TRACE));
        assert_eq!(detail.templates.len(), 2);
    }

    #[test]
    fn names_show_typed_placeholders_and_ids_hash_the_plain_shape() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let mut obs = None;
        for i in 0..3 {
            obs = Some(engine.observe(&event(
                &format!("read tcp 10.0.0.{i}:4{i}->10.0.0.9:80: read: connection reset by peer"),
                "a",
                t0 + i64::from(i),
            )));
        }
        engine.observe(&event("reset: connection reset by peer", "a", t0 + 9));
        engine.maintain();
        let obs = obs.expect("observed");
        let id = obs.cluster.expect("clustered");
        // Ids are hashes of the `<*>` forms, whatever the display says.
        assert_eq!(id, ClusterId::of("connection reset by peer"));
        assert_eq!(
            obs.template,
            Some(TemplateId::of(
                "read tcp <*>-><*>: read: connection reset by peer"
            ))
        );
        let detail = engine.cluster(id, t0 + MIN).expect("known");
        assert_eq!(
            detail.summary.name,
            "read tcp <ip:port>-><ip:port>: read: connection reset by peer"
        );
        assert_eq!(detail.summary.canonical, "connection reset by peer");
        assert_eq!(detail.templates[0].text, detail.summary.name);
    }

    #[test]
    fn a_merged_template_id_still_resolves_after_a_restart() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let first = engine
            .observe(&event("cache alpha: connection refused", "a", t0))
            .template
            .expect("templated");
        for (i, name) in ["beta", "gamma", "delta", "epsilon", "zeta"]
            .iter()
            .enumerate()
        {
            engine.observe(&event(
                &format!("cache {name}: connection refused"),
                "a",
                t0 + i as i64,
            ));
        }
        engine.maintain();
        let merged = TemplateId::of("cache <*>: connection refused");
        assert_ne!(first, merged);
        assert_eq!(engine.resolve_template(first), Some(merged));
        let restored = Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default())
            .expect("restored");
        assert_eq!(restored.resolve_template(first), Some(merged));
        assert_eq!(restored.resolve_template(merged), Some(merged));
        // Either template id leads to the pattern that holds the template now.
        let cluster = engine
            .cluster_of_template(first)
            .expect("the merged-away template id leads to its pattern");
        assert_eq!(engine.cluster_of_template(merged), Some(cluster));
        assert_eq!(restored.cluster_of_template(first), Some(cluster));
        let detail = engine.cluster(cluster, t0 + MIN).expect("live");
        assert!(detail.templates.iter().any(|t| t.id == merged));
        assert_eq!(engine.cluster_of_template(TemplateId(7)), None);
    }

    #[test]
    fn a_renamed_cluster_id_still_resolves_after_a_restart() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let long = "Get \"http://u:80/x\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        let first = engine.observe(&event(long, "a", t0)).cluster;
        engine.maintain();
        let old = first.expect("clustered");
        // The plain wording of the same kind arrives later: the pattern is named after it
        // from the next maintenance on, and the old id stays an alias.
        engine.observe(&event("call user: context deadline exceeded", "a", t0 + 1));
        engine.maintain();
        let new = ClusterId::of("context deadline exceeded");
        assert_ne!(old, new);
        assert_eq!(engine.resolve_cluster(old), Some(new));
        let detail = engine
            .cluster(old, t0 + MIN)
            .expect("the old id still answers");
        assert_eq!(detail.summary.id, new);
        assert_eq!(detail.summary.count, 2);
        assert_eq!(
            detail.former_ids,
            [old],
            "the old id is listed for older tags"
        );

        let text = serde_json::to_string(&engine.snapshot()).expect("serialised");
        assert!(text.contains("\"version\":\"V2\""), "{text}");
        let restored = Engine::from_snapshot(
            serde_json::from_str(&text).expect("read back"),
            ClusteringConfig::default(),
        )
        .expect("restored");
        assert_eq!(
            restored.migration(),
            None,
            "the current format needs no migration"
        );
        assert_eq!(restored.resolve_cluster(old), Some(new));
        assert_eq!(restored.resolve_cluster(new), Some(new));
        assert_eq!(
            restored.cluster(old, t0 + MIN).map(|d| d.summary.id),
            Some(new)
        );
        assert_eq!(restored.resolve_cluster(ClusterId(7)), None);
    }

    #[test]
    fn a_format_1_snapshot_is_migrated_to_rule_ids_and_says_so() {
        // Written by the previous version: one cluster of two roots, named after the oldest
        // (the long wording).
        let long = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        let stats = r#"{"count":3,"first":1,"last":2,"minutes":[[0,3]],"services":{"a":3},
            "severities":{"error":3},"samples":[],"values":{}}"#;
        let text = format!(
            r#"{{"version":"V1","keys":[
                {{"shape":"call: {long}","stats":{{"count":3,"first":1,"last":2,"root":0}}}},
                {{"shape":"call: context deadline exceeded","stats":{{"count":3,"first":1,"last":2,"root":1}}}}],
            "roots":[{{"text":"{long}","label":0,"stats":{stats}}},
                {{"text":"context deadline exceeded","label":0,"stats":{stats}}}],
            "canonical":[0],"counters":{{"events":6}}}}"#
        );
        let snapshot: Snapshot = serde_json::from_str(&text).expect("format 1 reads");
        let engine =
            Engine::from_snapshot(snapshot, ClusteringConfig::default()).expect("restored");
        let old = ClusterId::of(long);
        let new = ClusterId::of("context deadline exceeded");
        let migration = engine.migration().expect("a migration is reported");
        assert_eq!(
            *migration,
            Migration {
                from_format: 1,
                to_format: 2,
                cluster_ids_changed: 1
            }
        );
        assert!(migration.to_string().contains("1 pattern ids changed"));
        let rows = engine.clusters(&ClusterQuery::default());
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].id, rows[0].count), (new, 6));
        assert_eq!(engine.resolve_cluster(old), Some(new));
        // Written back in the current format, with the alias.
        let again = Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default())
            .expect("restored again");
        assert_eq!(again.migration(), None);
        assert_eq!(again.resolve_cluster(old), Some(new));
    }

    #[test]
    fn a_burst_of_a_new_error_is_emerging_and_old_steady_one_is_not() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * 1_000_000_000;
        for m in 0..60 {
            engine.observe(&event(
                "dial tcp 10.0.0.1:5432: connect: connection refused",
                "a",
                t0 + m * MIN,
            ));
        }
        for i in 0..20 {
            engine.observe(&event(
                "write tcp 1.2.3.4:1->5.6.7.8:2: write: broken pipe",
                "b",
                t0 + 59 * MIN + i,
            ));
        }
        let now = t0 + 59 * MIN + 30_000_000_000;
        let emerging = engine.emerging(now, 10);
        assert_eq!(emerging.len(), 1, "{emerging:?}");
        assert_eq!(emerging[0].canonical, "broken pipe");
        let e = emerging[0].emergence.as_ref().expect("reason");
        assert_eq!(e.kind, crate::emergence::EmergenceKind::New);
    }

    #[test]
    fn per_second_counts_place_late_events_and_keep_only_recent_seconds() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * NANOS_PER_SEC;
        let text = "read tcp 10.0.0.1:1->10.0.0.2:80: read: connection reset by peer";
        // Three in second 0, one in second 2, then a late one in second 1.
        for dt in [0, 10, 20] {
            engine.observe(&event(text, "a", t0 + dt));
        }
        engine.observe(&event(text, "a", t0 + 2 * NANOS_PER_SEC));
        let obs = engine.observe(&event(text, "a", t0 + NANOS_PER_SEC + 5));
        let id = obs.cluster.expect("clustered");
        let detail = engine.cluster(id, t0 + 3 * NANOS_PER_SEC).expect("known");
        let s0 = 1_700_000_000;
        assert_eq!(detail.per_second, [(s0, 3), (s0 + 1, 1), (s0 + 2, 1)]);

        // One event per second for longer than the bound: only the latest seconds stay.
        let later = t0 + 10 * NANOS_PER_SEC;
        for i in 0..(SECOND_HISTORY as i64 + 100) {
            engine.observe(&event(text, "a", later + i * NANOS_PER_SEC));
        }
        let detail = engine
            .cluster(id, later + 2_000 * NANOS_PER_SEC)
            .expect("known");
        assert_eq!(detail.per_second.len(), SECOND_HISTORY);
        let last = s0 + 10 + SECOND_HISTORY as i64 + 99;
        assert_eq!(detail.per_second.last(), Some(&(last, 1)));
        assert_eq!(detail.per_second[0], (last - SECOND_HISTORY as i64 + 1, 1));
    }

    #[test]
    fn snapshot_restores_ids_and_counts() {
        let engine = Engine::new(ClusteringConfig::default());
        let t0 = 1_700_000_000 * 1_000_000_000;
        let mut obs = Vec::new();
        for i in 0..10 {
            obs.push(engine.observe(&event(
                &format!("GetUser({i}): record not found"),
                "a",
                t0 + i,
            )));
            obs.push(engine.observe(&event("read: connection reset by peer", "b", t0 + i)));
        }
        engine.maintain();
        let mut before = engine.clusters(&ClusterQuery {
            now_unix_nanos: t0,
            ..Default::default()
        });
        // Per-second counts are not persisted (see `ClusterDetail::per_second`), so the
        // current rate starts again from zero after a restart.
        for row in &mut before {
            row.last_minute_count = 0;
        }
        // Through the file format, as the agent stores it.
        let text = serde_json::to_string(&engine.snapshot()).expect("serialised");
        let snapshot = serde_json::from_str(&text).expect("read back");
        let restored =
            Engine::from_snapshot(snapshot, ClusteringConfig::default()).expect("restored");
        let after = restored.clusters(&ClusterQuery {
            now_unix_nanos: t0,
            ..Default::default()
        });
        assert_eq!(before, after);
        let again = restored.observe(&event("GetUser(99): record not found", "a", t0 + 50));
        assert_eq!(again, obs[0]);
    }

    #[test]
    fn an_explosion_of_kinds_stays_bounded_and_a_new_kind_still_gets_its_pattern() {
        let config = ClusteringConfig {
            max_templates: 100,
            max_clusters: 50,
            ..ClusteringConfig::default()
        };
        let engine = Engine::new(config);
        let t0 = 1_700_000_000 * (NANOS_PER_MIN / 60);
        let mut known = None;
        for i in 0..100 {
            known = engine
                .observe(&event(
                    &format!("dial tcp 1.2.3.{i}:80: connect: connection refused"),
                    "a",
                    t0 + i64::from(i),
                ))
                .cluster;
        }
        for i in 0..5_000u32 {
            // Distinct words, never repeating: every message a new shape and a new root.
            let word: String = format!("{i:x}")
                .chars()
                .map(|c| (b'g' + c as u8 % 16) as char)
                .collect();
            engine.observe(&event(
                &format!("zz{word} failure of kind{word}"),
                "b",
                t0 + 1_000 + i64::from(i),
            ));
        }
        let EngineCounts {
            bounds: counters,
            templates,
            clusters,
        } = engine.counters();
        assert!(templates <= 100 && clusters <= 50, "{templates} {clusters}");
        assert!(counters.roots_evicted > 4_000, "{counters:?}");
        assert_eq!(counters.other_events, 0, "{counters:?}");
        // The frequent pattern kept its id and every one of its events.
        let rows = engine.clusters(&ClusterQuery {
            now_unix_nanos: t0 + 10_000,
            ..ClusterQuery::default()
        });
        let refused = rows.iter().find(|r| Some(r.id) == known).expect("kept");
        assert_eq!(refused.count, 100);
        // A kind never seen before still becomes its own pattern.
        let new = engine.observe(&event(
            "x509: certificate has expired or is not yet valid",
            "c",
            t0 + 20_000,
        ));
        assert!(new.cluster.is_some() && new.cluster != known);
        let again = engine.observe(&event(
            "dial tcp 5.6.7.8:81: connect: connection refused",
            "a",
            t0 + 20_001,
        ));
        assert_eq!(again.cluster, known);
    }

    #[test]
    fn roots_not_seen_lately_leave_before_recent_ones() {
        let config = ClusteringConfig {
            max_clusters: 10,
            ..ClusteringConfig::default()
        };
        let engine = Engine::new(config);
        let hour = 60 * NANOS_PER_MIN;
        let kinds = [
            "EOF",
            "unexpected EOF",
            "i/o timeout",
            "connection reset by peer",
            "broken pipe",
            "no such host",
            "context canceled",
            "permission denied",
            "disk quota exceeded",
            "too many open files",
        ];
        // One old kind seen many times two hours ago, nine recent rare ones.
        for i in 0..50 {
            engine.observe(&event(kinds[0], "a", i));
        }
        for (i, k) in kinds.iter().enumerate().skip(1) {
            engine.observe(&event(k, "a", 2 * hour + i as i64));
        }
        engine.observe(&event("no space left on device", "a", 2 * hour + 100));
        let counters = engine.counters().bounds;
        assert_eq!(counters.roots_evicted, 1);
        assert_eq!(
            counters.root_evicted_events, 50,
            "the stale kind left, not a recent one"
        );
        let mut rows = engine.clusters(&ClusterQuery {
            now_unix_nanos: 2 * hour + 200,
            ..ClusterQuery::default()
        });
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|r| r.canonical != "EOF"));
        // Per-second counts (the current rate) are not kept in snapshots.
        for row in &mut rows {
            row.last_minute_count = 0;
        }
        // The survivors are intact and still answer to their ids after a snapshot round trip.
        let restored =
            Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default()).expect("restore");
        let again = restored.clusters(&ClusterQuery {
            now_unix_nanos: 2 * hour + 200,
            ..ClusterQuery::default()
        });
        assert_eq!(rows, again);
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;
    use faultline_ingest::parse::{parse_line, STACK_ATTRIBUTE};
    use faultline_ingest::{Origin, SpanId, TraceId};

    /// Every reader (the live pipeline, `replay`) makes its events here: the text, ids,
    /// severity and stack of a record, as parsed.
    #[test]
    fn an_event_is_its_records_text_ids_severity_and_stack() {
        let origin = || Origin::File {
            path: "a.log".into(),
            offset: 0,
        };
        let mut zap = parse_line(
            r#"{"level":"error","ts":1710151200.5,"msg":"panic recovered","service":"orders","error":"runtime error: index out of range [7] with length 3"}"#,
            origin(),
        );
        zap.trace_id = Some(TraceId([0xAB; 16]));
        zap.span_id = Some(SpanId([0x01; 8]));
        zap.attributes.push((
            STACK_ATTRIBUTE.into(),
            "goroutine 7 [running]:\nmain.f()".into(),
        ));
        let ids = RecordIds::of(&zap);
        let event = ErrorEvent::from_record(&zap, &ids, 42);
        assert_eq!(
            event.text,
            "runtime error: index out of range [7] with length 3"
        );
        assert_eq!(event.service, Some("orders"));
        assert_eq!(event.severity, "error");
        assert_eq!(event.trace_id, Some("ab".repeat(16).as_str()));
        assert_eq!(event.span_id, Some("01".repeat(8).as_str()));
        assert_eq!(event.time_unix_nanos, 42);
        assert_eq!(event.stack, Some("goroutine 7 [running]:\nmain.f()"));

        // A request log with no level is an error when the request failed (5xx), and a
        // record without ids has none.
        let mut access = parse_line("GET /v1/orders/7 failed", origin());
        access.level = Level::Unknown;
        access.http_status = Some(502);
        let ids = RecordIds::of(&access);
        let event = ErrorEvent::from_record(&access, &ids, 1);
        assert_eq!(event.severity, "error");
        assert_eq!((event.trace_id, event.span_id), (None, None));
        access.level = Level::Info;
        access.http_status = Some(404);
        assert_eq!(ErrorEvent::from_record(&access, &ids, 1).severity, "info");
    }
}

#[cfg(test)]
mod eviction_tests {
    use super::*;

    #[test]
    fn stale_rare_templates_are_evicted_and_counted_frequent_ones_stay() {
        let config = ClusteringConfig {
            max_templates: 20,
            ..ClusteringConfig::default()
        };
        let engine = Engine::new(config);
        let hot = ErrorEvent {
            text: "read tcp 1.2.3.4:5->6.7.8.9:10: read: connection reset by peer",
            service: None,
            severity: "error",
            trace_id: None,
            span_id: None,
            time_unix_nanos: 0,
            stack: None,
            frame: None,
        };
        let first = engine.observe(&hot);
        for i in 0..10 {
            engine.observe(&ErrorEvent {
                time_unix_nanos: i,
                ..hot
            });
        }
        for i in 0..200 {
            // Same root (connection reset), ever new shapes: `wrapper<i>` words are new.
            let text = format!(
                "wrapper{} layer: read: connection reset by peer",
                "x".repeat(i % 40 + 1)
            );
            let extra = format!("{text} {}", "y".repeat(i / 40 + 1));
            engine.observe(&ErrorEvent {
                text: &extra,
                time_unix_nanos: 100 + i as i64,
                ..hot
            });
        }
        let EngineCounts {
            bounds: counters,
            templates,
            ..
        } = engine.counters();
        assert!(templates <= 20, "{templates}");
        assert!(counters.templates_evicted > 0);
        assert!(counters.evicted_events > 0);
        let again = engine.observe(&ErrorEvent {
            time_unix_nanos: 1_000,
            ..hot
        });
        assert_eq!(again, first, "the frequent template keeps its ids");
    }
}
