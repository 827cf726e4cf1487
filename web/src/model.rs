//! The read-only views the web surface reads the agent's stores through, and the documents
//! (DTOs) they return.
//!
//! `faultline-web` does not depend on the clustering engine, the trace store or the counter
//! sampler. The binary implements the three traits below over the real stores ([`ClusterView`],
//! [`TraceView`], [`CounterView`]) and hands them over in a [`Views`]; the handlers and the
//! dashboard only ever see the documents defined here. The documents are what the JSON API
//! returns, so their shape is the API contract, described in the OpenAPI document.
//!
//! Conventions: times are Unix milliseconds (`*_unix_ms`) for patterns and counters, Unix
//! microseconds (`*_unix_us`) for spans, whose durations need the precision. Ids are
//! lowercase hex strings. Every text field may hold attacker-controlled log content; the
//! dashboard inserts it as text only.
//!
//! Socket states, port sides, counter families and series keys are the types of
//! `faultline-series`, re-exported here: their API names, `ss` names and labels are rendered
//! from that one definition, and documents carry the rendered names (`state_name`, `label`)
//! so the dashboard keeps no table of its own. The diagnosis' documents (the incidents, what
//! moved, the occurrence counts and `Series` they share with the counters) are
//! `faultline-diagnosis`'s, re-exported; the binary computes them behind [`DiagnosisView`].

use std::sync::Arc;

pub use faultline_diagnosis::culprit::Culprit;
pub use faultline_diagnosis::moved::{
    MovedConfidence, MovedCounter, MovedRelation, MovedUnjudged, MovedVerdict, MovedWithIt,
};
pub use faultline_diagnosis::onset::OnsetSource;
pub use faultline_diagnosis::{MinuteCounts, SecondCounts, Series};
pub use faultline_series::{CounterKind, PortSide, SeriesKey, SocketState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::live::LiveUpdates;

/// Everything the web surface reads, handed over by the binary.
#[derive(Clone)]
pub struct Views {
    /// The error patterns (clusters) and their templates.
    pub clusters: Arc<dyn ClusterView>,
    /// The call chains (spans and logs joined on trace id).
    pub traces: Arc<dyn TraceView>,
    /// The node's socket, sockstat, process and task counters.
    pub counters: Arc<dyn CounterView>,
    /// The diagnosis' answers: the incidents and what moved with a pattern.
    pub diagnosis: Arc<dyn DiagnosisView>,
    /// Where the stores announce changes; the live-update stream (SSE) watches it.
    pub live: LiveUpdates,
}

/// Read access to the cluster store.
pub trait ClusterView: Send + Sync {
    /// A snapshot of every cluster's summary row, in any order.
    ///
    /// Called on every list request, so it must be cheap: a store keeps the snapshot behind
    /// an `Arc` and rebuilds it when clusters change (at most a few times a second), rather
    /// than building rows per call. The web layer filters, sorts and pages it.
    fn summaries(&self) -> Arc<[ClusterSummary]>;

    /// The full detail of one cluster, `None` when no cluster has this id.
    fn detail(&self, id: &str) -> Option<ClusterDetail>;

    /// What the diagnosis reads of a cluster on every run: the newest sample's message and
    /// the first `traces` of the detail's trace ids, `None` when no cluster has this id. By
    /// default from [`Self::detail`]; a store should read only these (the diagnosis asks for
    /// every pattern it judges, once a second).
    fn evidence(&self, id: &str, traces: usize) -> Option<PatternEvidence> {
        let detail = self.detail(id)?;
        Some(PatternEvidence {
            example: detail.samples.first().map(|s| s.message.clone()),
            trace_ids: detail.trace_ids.into_iter().take(traces).collect(),
            run_start_unix_ms: None,
        })
    }

    /// The counts of the patterns `ids` now, in order (`None` for an id no cluster has): what
    /// an incident is recounted from on every read ([`Incident::recount`]). By default from
    /// [`Self::summaries`]; a store should read only these patterns (the dashboard reads the
    /// incidents every second), and may follow a renamed pattern's former id.
    fn pattern_counts(&self, ids: &[&str]) -> Vec<Option<PatternCounts>> {
        let rows = self.summaries();
        ids.iter()
            .map(|id| {
                rows.iter().find(|r| r.id == *id).map(|r| PatternCounts {
                    count: r.total_count,
                    untraced: r.untraced_count,
                    failed_before: r
                        .failed_before
                        .iter()
                        .map(|f| (f.pattern_id.clone(), f.count))
                        .collect(),
                })
            })
            .collect()
    }

    /// Counters about the store itself (clusters evicted, records dropped, ...), exported on
    /// `/metrics` and the dashboard. Empty by default.
    fn store_counters(&self) -> Vec<StoreCounter> {
        Vec::new()
    }
}

/// A cluster as the diagnosis reads it on every run ([`ClusterView::evidence`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternEvidence {
    /// The newest sample's message (raw: it keeps what the template masks).
    pub example: Option<String>,
    /// Its latest trace ids, newest first, as [`ClusterDetail::trace_ids`] lists them.
    pub trace_ids: Vec<String>,
    /// When its current run began (Unix ms): its first occurrence after its last minute of
    /// silence ([`faultline_diagnosis::onset::current_run_start`]); `None` when the seconds
    /// held show no such silence (the run began before them) or are not known.
    pub run_start_unix_ms: Option<i64>,
}

/// Read access to the trace store.
pub trait TraceView: Send + Sync {
    /// The call chain of one trace, `None` when the trace is unknown (or was evicted).
    /// `trace_id` is always 32 lowercase hex digits.
    fn call_chain(&self, trace_id: &str) -> Option<CallChain>;

    /// The most recent traces matching `query` (see [`TraceQuery::matches`]), newest first,
    /// at most `query.limit` of them.
    fn find(&self, query: &TraceQuery) -> Vec<TraceSummary>;

    /// The call chains of the latest traces with spans, latest first, at most `limit`: what
    /// the diagnosis reads each run to learn who calls whom. Their culprit and error origin
    /// may be left unjudged. By default the chains of the [`Self::find`] rows of every
    /// trace; a store should read the few latest without a scan or a sort.
    fn recent_chains(&self, limit: usize) -> Vec<CallChain> {
        self.find(&TraceQuery {
            cluster: None,
            service: None,
            errors_only: false,
            limit,
        })
        .iter()
        .filter_map(|t| self.call_chain(&t.trace_id))
        .collect()
    }

    /// Counters about the store itself (traces evicted, spans dropped, ...). Empty by
    /// default.
    fn store_counters(&self) -> Vec<StoreCounter> {
        Vec::new()
    }
}

/// The answers of the diagnosis (`faultline-diagnosis`), computed by the binary over the real
/// stores. The web surface only renders them: it never judges a counter or dates an onset.
pub trait DiagnosisView: Send + Sync {
    /// What on the node moved with the pattern `id`, `None` when no cluster has this id.
    fn moved(&self, id: &str) -> Option<MovedWithIt>;

    /// What on the node moved with `incident`: with patterns, its first pattern's answer
    /// ([`Self::moved`]); of counters only, the counters compared around its onset and ranked
    /// by relation to its culprit, its own counters first
    /// (`faultline_diagnosis::what_moved_with_incident`). `None` when it cannot be answered
    /// (its first pattern is gone).
    fn incident_moved(&self, incident: &Incident) -> Option<MovedWithIt>;

    /// The latest incidents document: the answer of the agent's diagnosis loop, which runs in
    /// the background (about once a second) over the other stores. Called on every request:
    /// the agent keeps it behind an `Arc` and replaces it after each run.
    fn incidents(&self) -> Arc<IncidentsDocument>;
}

/// Read access to the node's counters.
pub trait CounterView: Send + Sync {
    /// The latest values of every counter, with the retained history at `resolution`. No
    /// `traffic`: the diagnosis reads this once a second and lays the services' traffic on
    /// the counters' axis itself; the counters page reads [`Self::page`].
    fn snapshot_at_resolution(&self, resolution: HistoryResolution) -> CountersSnapshot;

    /// The counters page's document: [`Self::snapshot_at_resolution`] with the services'
    /// `traffic` on the same axis. By default the snapshot as it is.
    fn page(&self, resolution: HistoryResolution) -> CountersSnapshot {
        self.snapshot_at_resolution(resolution)
    }

    /// [`Self::page`] encoded as JSON, as `GET /api/v1/counters` serves it. By default
    /// encoded at every call.
    fn page_json(&self, resolution: HistoryResolution) -> Result<Arc<[u8]>, serde_json::Error> {
        Ok(serde_json::to_vec(&self.page(resolution))?.into())
    }

    /// The latest values with the per-sample history (the last 15 minutes by default).
    fn snapshot(&self) -> CountersSnapshot {
        self.snapshot_at_resolution(HistoryResolution::Second)
    }

    /// The latest values, for `/metrics` at every scrape: the same series as [`Self::snapshot`]
    /// lists, but a store should not lay out their history for it (histories may be empty,
    /// `delta_1m` absent). By default the whole snapshot, for views without a cheaper read.
    fn current(&self) -> CountersSnapshot {
        self.snapshot()
    }

    /// Counters about the counter store itself (history series kept and evicted, task
    /// targets rejected by the bound). Empty by default.
    fn store_counters(&self) -> Vec<StoreCounter> {
        Vec::new()
    }
}

pub use faultline_diagnosis::anomaly::{ChangeShape, CounterAnomaly, Direction, Unjudged};
pub use faultline_diagnosis::hints::{Check, CulpritRole, Hint};
pub use faultline_diagnosis::incident::{
    CountedAs, Incident, IncidentCounter, IncidentCulprit, IncidentPattern, IncidentState,
    NodeSignal, PatternCounts, PatternCulprit, Relation,
};

/// The answer of `GET /api/v1/incidents/{id}`: the incident, with what moved with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident, as `GET /api/v1/incidents` lists it.
    #[serde(flatten)]
    pub incident: Incident,
    /// What on the node moved with it: for an incident with patterns, its first pattern's
    /// answer (as `GET /api/v1/clusters/{id}/moved`); for one of counters only, its own
    /// counters' change and the series that moved around its onset, ranked by relation to its
    /// culprit (`incident_id` set, `cluster_id` empty). `null` when it cannot be answered.
    pub moved: Option<MovedWithIt>,
}

/// The answer of `GET /api/v1/incidents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentsDocument {
    /// When the diagnosis last ran (Unix ms); 0 before its first run.
    pub evaluated_at_unix_ms: i64,
    /// Counter series judged for anomalies in that run.
    pub series_judged: u64,
    /// Counter series that could not be judged, and why (a series that appeared after the
    /// agent started, a baseline with too few points). At most a few dozen, the rest counted
    /// in `unjudged_omitted`.
    pub unjudged: Vec<Unjudged>,
    /// Unjudged series left out of `unjudged` by the bound.
    pub unjudged_omitted: u64,
    /// The incidents: active first, then those resting on more kinds of evidence (a known
    /// culprit, patterns, counters of the culprit, a hint), then the most recent onset first.
    pub incidents: Vec<Incident>,
    /// Counter anomalies that are node activity, not incidents (a port no known service
    /// owns, a node-wide total with no incident near it), with the reason; the highest score
    /// first.
    #[serde(default)]
    pub node_signals: Vec<NodeSignal>,
    /// Whether the diagnosis keeps up: how long its runs take against their period, and how
    /// old the counters it judged were. All 0 before the first run.
    #[serde(default)]
    pub run: DiagnosisRun,
}

/// How the diagnosis keeps up with the node. The document is as old as
/// `now - evaluated_at_unix_ms`; a run that takes longer than `interval_ms` delays the next
/// (runs never queue), so a node that makes runs slow makes every answer late.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiagnosisRun {
    /// The configured time between runs (ms).
    pub interval_ms: u64,
    /// How long the latest run took (ms).
    pub duration_ms: u64,
    /// The slowest run of the last minute (ms).
    pub slowest_ms_1m: u64,
    /// Runs since the agent started.
    pub runs: u64,
    /// Runs since the agent started that took longer than `interval_ms`.
    pub overran: u64,
    /// Time of the newest counter sample the latest run judged (Unix ms; 0 when it had
    /// none): a sampler that falls behind makes the counters older than the run.
    pub counters_sampled_at_unix_ms: i64,
    /// Counter series the anomaly detector judged in full in the latest run. The others of
    /// `series_judged` kept the verdict of an earlier run: their latest points stayed inside
    /// the usual band they were judged against, and each is judged in full again within 15 s.
    #[serde(default)]
    pub series_judged_in_full: u64,
    /// Counter series that needed a judgement in the latest run and were left for a later one
    /// (a run judges a bounded number of series in full): each is listed in `unjudged` with
    /// the reason. More than 0 means the node has more moving series than a run judges.
    #[serde(default)]
    pub series_deferred: u64,
}

/// A counter about a store (evictions, drops, sizes), exported as
/// `faultline_store_<name>` on `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreCounter {
    /// Metric name suffix, `[a-z0-9_]+` (e.g. `clusters_evicted_total`).
    pub name: String,
    /// One line saying what it counts.
    pub help: String,
    /// Current value.
    pub value: f64,
}

/// Why a cluster is shown as emerging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmergenceKind {
    /// A pattern never seen before.
    New,
    /// A known pattern whose rate rose well above its baseline.
    Surge,
}

/// The emergence verdict of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Emergence {
    /// New pattern or surge of a known one.
    pub kind: EmergenceKind,
    /// A sentence for a person: e.g. "first seen 2 min ago, 140/min" or "12x its 1h baseline".
    pub reason: String,
    /// How strongly it emerges (higher is stronger); used to rank emerging patterns.
    pub score: f64,
    /// When the pattern started emerging (Unix ms).
    pub since_unix_ms: i64,
}

/// One row of the cluster list: an error pattern at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterSummary {
    /// Stable cluster id (content hash of the canonical template).
    pub id: String,
    /// The canonical masked template, parameters shown as `<IP>`, `<NUM>`, `<*>`, ...
    pub canonical_template: String,
    /// Services it was seen in.
    pub services: Vec<String>,
    /// First occurrence (Unix ms).
    pub first_seen_unix_ms: i64,
    /// Latest occurrence (Unix ms).
    pub last_seen_unix_ms: i64,
    /// Failures since first seen (or since the store's retention began): within one trace the
    /// pattern counts once however many log lines and error spans reported it (those are in
    /// the detail's `reports` and `seen_in`); records without a trace id count one each.
    pub total_count: u64,
    /// Of `total_count`, the records without a trace id (one each). Beside failures counted
    /// by trace they are rarely failed requests: lines of no request whose innermost error is
    /// the same (a span exporter's `otlp export: Post …: socket: too many open files` beside
    /// the requests that failed with it), or failures whose trace is unknown. An incident
    /// lists them apart from its failed requests (`untraced_records`).
    #[serde(default)]
    pub untraced_count: u64,
    /// Current rate: occurrences in the last 60 s, per minute.
    pub rate_per_minute: f64,
    /// How many templates the cluster groups.
    pub template_count: u64,
    /// Set while the pattern is emerging (new or surging).
    pub emergence: Option<Emergence>,
    /// Recent per-minute counts for the sparkline (the last hour or so).
    pub sparkline: MinuteCounts,
    /// Where its failures live, voted over its recent traces (shown for emerging patterns;
    /// `null` when not judged or when no trace of it is held).
    #[serde(default)]
    pub culprit: Option<Culprit>,
    /// Its failures in requests (traces) that had already failed with another pattern, by
    /// that pattern, most first: such a request is in both patterns' `total_count`, and an
    /// incident holding both counts it once.
    #[serde(default)]
    pub failed_before: Vec<SharedFailures>,
}

/// Failed requests a pattern shares with another pattern that failed in them first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SharedFailures {
    /// The pattern the requests failed with first.
    pub pattern_id: String,
    /// Such requests.
    pub count: u64,
}

/// One template (exact masked shape) of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateRow {
    /// Stable template id (content hash of the masked template).
    pub id: String,
    /// The masked template.
    pub template: String,
    /// Occurrences.
    pub count: u64,
    /// Services it was seen in.
    pub services: Vec<String>,
    /// First occurrence (Unix ms).
    pub first_seen_unix_ms: i64,
    /// Latest occurrence (Unix ms).
    pub last_seen_unix_ms: i64,
}

/// How often a value was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValueCount {
    /// The parameter value as it appeared in the message.
    pub value: String,
    /// Occurrences.
    pub count: u64,
}

/// The most frequent values of one masked parameter of a cluster (e.g. which peer addresses
/// reset the connections).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParameterDistribution {
    /// The parameter: its mask and position, e.g. `<IP> #2`.
    pub name: String,
    /// Top values, most frequent first.
    pub top: Vec<ValueCount>,
    /// Occurrences of every value not in `top`.
    pub other_count: u64,
}

/// One stored occurrence of a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sample {
    /// When it was logged (Unix ms).
    pub time_unix_ms: i64,
    /// Service that logged it.
    pub service: String,
    /// Normalised level (`error`, `warn`, ...).
    pub level: String,
    /// The raw message.
    pub message: String,
    /// Trace it belongs to, if the record carried one.
    pub trace_id: Option<String>,
    /// Span it belongs to, if the record carried one.
    pub span_id: Option<String>,
}

/// How many occurrences of a pattern one kind of source reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeenIn {
    /// `file_log` (a tailed log line), `otlp_log` (an OpenTelemetry log record) or `span` (an
    /// error span: its status or an `exception` event).
    pub source: String,
    /// Occurrences it reported.
    pub occurrences: u64,
}

/// Everything about one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterDetail {
    /// The same row as in the list.
    pub summary: ClusterSummary,
    /// Its templates, most frequent first.
    pub templates: Vec<TemplateRow>,
    /// Top values of each masked parameter.
    pub parameters: Vec<ParameterDistribution>,
    /// Log records and error spans that reported its occurrences, echoes included (at least
    /// `total_count`).
    #[serde(default)]
    pub reports: u64,
    /// Which kinds of source saw its occurrences: an occurrence reported by a log line and an
    /// error span counts under both.
    #[serde(default)]
    pub seen_in: Vec<SeenIn>,
    /// Occurrences each service reported, most first: the service where a failure starts and
    /// the callers that echoed it each count it once.
    #[serde(default)]
    pub service_occurrences: Vec<ValueCount>,
    /// Per-minute counts over the store's whole retention.
    pub per_minute: MinuteCounts,
    /// Recent occurrences, newest first.
    pub samples: Vec<Sample>,
    /// Traces it occurred in, newest first.
    pub trace_ids: Vec<String>,
    /// Where its failures live, voted over its recent traces, with the reasoning and evidence;
    /// `null` when no trace of it is held.
    #[serde(default)]
    pub culprit: Option<Culprit>,
    /// The latest stack trace its reports carried (a Go panic's goroutine dump joined to its
    /// log record); `null` when none did. Its top application frame is the `stack frame`
    /// parameter.
    #[serde(default)]
    pub stack: Option<PatternStack>,
}

/// A stack trace reported with a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatternStack {
    /// The stack as the service wrote it (cut to 16 KiB).
    pub text: String,
    /// The trace of the report that carried it, if it had one.
    pub trace_id: Option<String>,
    /// Its top application frame (`main.(*service).priceOf service.go:245`), if found.
    pub top_frame: Option<String>,
}

/// Filters of the trace list; also what [`TraceView::find`] is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceQuery {
    /// Only traces in which this pattern occurred: its id, an id it had before (merged or
    /// renamed away), or the id of one of its templates.
    pub cluster: Option<String>,
    /// Only traces that went through this service.
    pub service: Option<String>,
    /// Only traces with at least one error span or error log.
    pub errors_only: bool,
    /// At most this many (already validated, >= 1).
    pub limit: usize,
}

impl TraceQuery {
    /// Whether `trace` passes the filters (the limit aside): a store without indexes can
    /// scan its summaries with this.
    pub fn matches(&self, trace: &TraceSummary) -> bool {
        if self.errors_only && trace.error_count == 0 {
            return false;
        }
        if let Some(service) = &self.service {
            if !trace.services.iter().any(|s| s == service) {
                return false;
            }
        }
        if let Some(cluster) = &self.cluster {
            if !trace.cluster_ids.iter().any(|c| c == cluster) {
                return false;
            }
        }
        true
    }
}

/// One row of the trace list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TraceSummary {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// Service of the root span (or of the earliest span when the root is missing).
    pub root_service: String,
    /// Name of the root span (e.g. `GET /users/:id`).
    pub root_name: String,
    /// Start of the earliest span (Unix µs).
    pub start_unix_us: i64,
    /// From the earliest start to the latest end (µs).
    pub duration_us: i64,
    /// Spans received.
    pub span_count: u64,
    /// Spans with error status plus error logs.
    pub error_count: u64,
    /// Services it went through.
    pub services: Vec<String>,
    /// Clusters of the errors logged in it.
    pub cluster_ids: Vec<String>,
}

/// Status of a span, as OpenTelemetry defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    /// Not set by the instrumentation.
    Unset,
    /// Explicitly ok.
    Ok,
    /// Failed.
    Error,
}

/// A key/value attribute of a span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attribute {
    /// Attribute key (e.g. `http.status_code`).
    pub key: String,
    /// Value rendered as text.
    pub value: String,
}

/// A log record attached to a call chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainLog {
    /// When it was logged (Unix µs).
    pub time_unix_us: i64,
    /// Service that logged it.
    pub service: String,
    /// Normalised level.
    pub level: String,
    /// The raw message.
    pub message: String,
    /// The cluster it was assigned to (error-ish records only).
    pub cluster_id: Option<String>,
    /// The stack trace joined to the record (a Go panic's goroutine dump), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// One span of a call chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainSpan {
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Parent span, `None` for the root (or when the parent never arrived).
    pub parent_span_id: Option<String>,
    /// Depth in the tree (root = 0).
    pub depth: u32,
    /// Service that emitted it.
    pub service: String,
    /// Operation name.
    pub name: String,
    /// Span kind (`server`, `client`, `internal`, ...).
    pub kind: String,
    /// Start (Unix µs).
    pub start_unix_us: i64,
    /// Duration (µs).
    pub duration_us: i64,
    /// Status.
    pub status: SpanStatus,
    /// Status message, if any.
    pub status_message: Option<String>,
    /// Attributes worth showing.
    pub attributes: Vec<Attribute>,
    /// Logs emitted within this span, oldest first.
    pub logs: Vec<ChainLog>,
}

/// A call chain: the spans of one trace as a tree, logs attached to their spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallChain {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The spans in depth-first tree order (each parent before its children, siblings by
    /// start time); `parent_span_id` and `depth` give the tree.
    pub spans: Vec<ChainSpan>,
    /// The span where the error starts: the deepest failing span whose children did not fail.
    pub error_origin_span_id: Option<String>,
    /// Logs with this trace id whose span is unknown.
    pub unattached_logs: Vec<ChainLog>,
    /// Clusters of the errors logged in it.
    pub cluster_ids: Vec<String>,
    /// Where its error lives: the callee of a failing call when the caller only saw a
    /// transport error, with the reasoning and evidence; `null` when nothing failed.
    #[serde(default)]
    pub culprit: Option<Culprit>,
}

/// Which of the two history rings a [`CountersSnapshot`] carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryResolution {
    /// One point per sample (every `interval_ms` of the sampler, 1 s by default) over the last
    /// 15 minutes.
    #[default]
    Second,
    /// One point per minute over the last 24 hours: each point is the minute's peak for a
    /// level (sockets, queue lengths, fds, tasks) and the minute's mean for a rate, so a storm
    /// of a few seconds is not averaged away. Only closed minutes are shown; the minute in
    /// progress is in the current values.
    Minute,
}

/// Sockets in one state on one port, over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SocketSeries {
    /// The port.
    pub port: u16,
    /// Local (listening) or remote (peer) port.
    pub side: PortSide,
    /// The TCP state.
    pub state: SocketState,
    /// The state as `ss -tan` prints it (`TIME-WAIT`), for display.
    #[serde(default)]
    pub state_name: String,
    /// The series' name as the dashboard and the evidence sentences show it
    /// (`TIME-WAIT →:8080` for a peer's port, `CLOSE-WAIT :8080` for a local one).
    #[serde(default)]
    pub label: String,
    /// Latest count.
    pub current: u64,
    /// History of the count.
    pub history: Series,
}

impl SocketSeries {
    /// The series of `state` on one port group, its names rendered from the series
    /// vocabulary.
    pub fn new(
        port: u16,
        side: PortSide,
        state: SocketState,
        current: u64,
        history: Series,
    ) -> Self {
        SocketSeries {
            port,
            side,
            state,
            state_name: state.ss_name().to_owned(),
            label: SeriesKey::PortState { port, side, state }.label(),
            current,
            history,
        }
    }
}

/// A named counter over time (a `/proc/net/sockstat` field, or a protocol counter rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NamedSeries {
    /// Its name, e.g. `TCP inuse`, `TCP tw`, `TcpExt ListenOverflows`.
    pub name: String,
    /// Unit of the values, e.g. `sockets`, `/s`.
    pub unit: String,
    /// Latest value.
    pub current: Option<f64>,
    /// History of the value.
    pub history: Series,
    /// For a protocol counter rate: the kernel's running total it is computed from (what a
    /// Prometheus `rate()` wants); `null` for other series.
    #[serde(default)]
    pub total: Option<i64>,
}

/// Open file descriptors, threads and resident memory of one watched process target (the
/// agent itself is the target named `faultline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessSeries {
    /// Process id (the first, when the target matches several processes, which are summed);
    /// 0 when the target could not be read.
    pub pid: u32,
    /// Process or service name.
    pub name: String,
    /// Open file descriptors over time.
    pub fds: Series,
    /// Threads over time.
    pub threads: Series,
    /// Resident memory in bytes over time.
    #[serde(default)]
    pub rss_bytes: Series,
    /// The latest reading; `null` when the process could not be read (see `error`).
    #[serde(default)]
    pub current: Option<ProcessNow>,
    /// Why the process could not be read at the latest sample (not found, no permission).
    #[serde(default)]
    pub error: Option<String>,
    /// Its connections to the node's listening ports as of the latest read of its
    /// descriptors (at each census, and every few tens of milliseconds while a TIME-WAIT storm
    /// is suspected), one entry per port, the most distinct connections first: who opens a
    /// connection per call shows here, where TIME-WAIT sockets belong to no process.
    #[serde(default)]
    pub outgoing: Vec<OutgoingPort>,
    /// When its descriptors were last read for `outgoing` (Unix ms); `null` when never.
    #[serde(default)]
    pub outgoing_counted_at_unix_ms: Option<i64>,
    /// Reads of its descriptors over the last minute: the chances it had to be caught
    /// holding a short-lived connection.
    #[serde(default)]
    pub outgoing_reads_1m: u32,
    /// Sockets it opened and closed between two reads over the last minute whose kind and
    /// peer nothing placed while they were open.
    #[serde(default)]
    pub outgoing_unplaced_short_lived_1m: u32,
    /// Sockets it opened and closed between two reads over the last minute that were no
    /// connection to a listener of the node (accepted connections, connections elsewhere).
    #[serde(default)]
    pub outgoing_elsewhere_short_lived_1m: u32,
}

/// A process target's connections to one of the node's listening ports (what
/// `ss -tnp '( dport = :PORT )'` shows beside the process, read again and again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutgoingPort {
    /// The listening port the connections go to.
    pub port: u16,
    /// Connections (ESTABLISHED or SYN-SENT) held to it at the latest read.
    pub held: u32,
    /// Of those, how many the census before did not see: a pooled client holds the same
    /// ones, a client opening a connection per call new ones.
    pub new: u32,
    /// Connections to it seen held and then gone over the last minute: each was closed. A
    /// pooled client closes few, a client opening a connection per call one per call.
    #[serde(default)]
    pub closed_1m: u32,
    /// Of those, how many were seen at one read only (gone by the next read): connections
    /// that lived less than the gap between two reads.
    #[serde(default)]
    pub short_lived_1m: u32,
    /// Distinct connections over the last minute: held now or closed (at least this many
    /// when `distinct_capped`).
    pub distinct_1m: u32,
    /// Whether the closed count reached its bound.
    pub distinct_capped: bool,
    /// Local ports of the connections held now, then of the latest closed (at most five).
    #[serde(default)]
    pub local_ports: Vec<u16>,
}

/// The latest reading of a process target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProcessNow {
    /// Open file descriptors (sockets included).
    pub open_fds: u64,
    /// The soft limit on open files (`ulimit -n`, the lowest among the target's processes);
    /// `null` when unlimited or unreadable. At the limit, `accept()` and `open()` fail with
    /// "too many open files".
    pub fd_limit: Option<u64>,
    /// Threads.
    pub threads: u64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
}

/// Goroutine-style task count of one target (e.g. a Go service's pprof endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskSeries {
    /// Target name as configured (`[[tasks]] name`), or the service name of OTLP runtime
    /// metrics; `name (source)` when several sources report one target.
    pub target: String,
    /// Latest count; `null` while the target fails (see `error`), never 0 for a failure.
    pub current: Option<u64>,
    /// History of the count.
    pub history: Series,
    /// Why the last scrape failed (timeout, refused, bad answer) or why the pushed value went
    /// stale, if it did.
    pub error: Option<String>,
    /// Where the count comes from: `pprof`, `expvar`, `prometheus`, `http` or `otlp`.
    #[serde(default)]
    pub source: String,
    /// When the count was last read successfully (Unix ms); `null` if never.
    #[serde(default)]
    pub last_success_unix_ms: Option<i64>,
    /// The count read then, kept for context while the target fails.
    #[serde(default)]
    pub last_value: Option<f64>,
}

/// The agent's own tokio runtime, watched like a service's goroutines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuntimeSeries {
    /// Worker threads.
    pub workers: u64,
    /// Tasks spawned and not yet finished: latest value and history. A steady climb is a
    /// task leak of the agent itself.
    pub alive_tasks: CountSeries,
    /// Tasks waiting in the runtime's global queue: latest value and history. A queue that
    /// does not drain means the agent is overloaded.
    pub global_queue_depth: CountSeries,
    /// Fraction of worker time spent busy over the last interval (0..=1); `null` for the
    /// first sample.
    pub busy_ratio: Option<f64>,
    /// History of the busy fraction.
    pub busy_ratio_history: Series,
}

/// A latest value with its history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountSeries {
    /// Latest value.
    pub current: u64,
    /// History of the value.
    pub history: Series,
}

/// Whether a counter source can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Read at the latest sample.
    Available,
    /// Not present on this node or not allowed (netlink refused, file missing, no
    /// permission); a fallback may be in use.
    Unavailable,
    /// Tried and failed at the latest sample (timeout, error, unparsable answer).
    Failing,
}

/// The status of one node counter source. A source that is not available has no values in
/// the snapshot (`null` or absent), never zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceStatus {
    /// `sockets.netlink` (netlink `sock_diag`), `sockets.proc` (`/proc/net/tcp{,6}`, the
    /// fallback), `sockstat`, `protocol` (`/proc/net/snmp` and `netstat`), or
    /// `process.<name>`.
    pub name: String,
    /// Available, unavailable or failing.
    pub status: SourceState,
    /// Why it is not available (the error as the agent saw it), or what replaces it.
    pub reason: Option<String>,
}

/// Where a socket census came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SocketSource {
    /// Netlink `sock_diag`, what `ss` uses; gives listen backlogs.
    Netlink,
    /// `/proc/net/tcp` and `/proc/net/tcp6`, the fallback; no listen backlogs.
    Proc,
}

/// Sockets of the whole node in one state, over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateSeries {
    /// The TCP state.
    pub state: SocketState,
    /// The state as `ss -tan` prints it (`TIME-WAIT`), for display.
    #[serde(default)]
    pub state_name: String,
    /// Latest count.
    pub current: u64,
    /// History of the count.
    pub history: Series,
}

impl StateSeries {
    /// The node-wide series of `state`.
    pub fn new(state: SocketState, current: u64, history: Series) -> Self {
        StateSeries {
            state,
            state_name: state.ss_name().to_owned(),
            current,
            history,
        }
    }
}

/// A socket count in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateCount {
    /// The TCP state.
    pub state: SocketState,
    /// The state as `ss -tan` prints it (`TIME-WAIT`), for display.
    #[serde(default)]
    pub state_name: String,
    /// Sockets in that state.
    pub count: u64,
}

impl StateCount {
    /// `count` sockets in `state`.
    pub fn new(state: SocketState, count: u64) -> Self {
        StateCount {
            state,
            state_name: state.ss_name().to_owned(),
            count,
        }
    }
}

/// The port groups beyond the top N of `sockets`, summed, so that nothing is silently left
/// out: `sockets` plus this group add up to all sockets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OtherPorts {
    /// How many (port, side) groups are summed here.
    pub port_groups: u64,
    /// All their sockets.
    pub total: u64,
    /// Their non-zero counts by state.
    pub by_state: Vec<StateCount>,
    /// History of `total`.
    pub history: Series,
}

/// The node's TCP sockets as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SocketTotals {
    /// Which source counted them.
    pub source: SocketSource,
    /// All TCP sockets.
    pub total: u64,
    /// Every state, zeros included, with history.
    pub by_state: Vec<StateSeries>,
    /// IPv4 sockets: non-zero counts by state.
    pub ipv4: Vec<StateCount>,
    /// IPv6 sockets (IPv4-mapped included): non-zero counts by state.
    pub ipv6: Vec<StateCount>,
    /// The port groups beyond the top N.
    pub other_ports: OtherPorts,
    /// How old each point's socket counts are (ms): 0 when the sockets were counted for
    /// that sample, else the time since the census it repeats (the census runs less often
    /// than every sample when it would cost more than `socket_cpu_budget_percent`).
    #[serde(default)]
    pub census_age_ms: Series,
}

/// The accept queue of one listening socket: connections the kernel has completed and the
/// service has not yet `accept()`ed. At the backlog, new connections are dropped
/// (`TcpExt ListenOverflows`): a queue at or near its backlog is a SYN flood or a service
/// that accepts too slowly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListenQueue {
    /// The address it listens on (`0.0.0.0`, `::`, `127.0.0.1`, ...).
    pub address: String,
    /// The port it listens on.
    pub port: u16,
    /// Connections waiting for `accept()`.
    pub queue: u64,
    /// The backlog (the queue's bound); `null` when the source cannot tell (`/proc/net/tcp`).
    pub backlog: Option<u64>,
    /// `queue / backlog`; `null` when the backlog is unknown or 0.
    pub fill: Option<f64>,
    /// History of the accept-queue length of this port: the store keeps one series per
    /// port, so listeners sharing a port (e.g. `0.0.0.0` and `::`) share it, summed.
    pub history: Series,
}

/// The node's counters: latest values and history on one time axis.
///
/// Everything here is a level at the latest sample, with history. What a failing source
/// would have shown is left out or `null`, and `sources` says why; it is never shown as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountersSnapshot {
    /// When the latest sample was taken (Unix ms); 0 before the first.
    pub sampled_at_unix_ms: i64,
    /// Time of the first history point (Unix ms).
    pub history_start_unix_ms: i64,
    /// Time between history points (ms, >= 1): the sampling interval, or 60 000 for the
    /// per-minute history.
    pub step_ms: i64,
    /// TCP sockets per port and state, for the top N port groups and the services' own ports
    /// (see `socket_totals` for the node-wide counts and the other ports).
    pub sockets: Vec<SocketSeries>,
    /// `/proc/net/sockstat` fields.
    pub sockstat: Vec<NamedSeries>,
    /// Protocol counter rates (`/proc/net/snmp`, `netstat`), per second.
    pub protocol_rates: Vec<NamedSeries>,
    /// Watched processes, the agent itself (`faultline`) first.
    pub processes: Vec<ProcessSeries>,
    /// Task (goroutine) counters per target.
    pub tasks: Vec<TaskSeries>,
    /// Which history ring the `history`/`points` of this snapshot come from.
    #[serde(default)]
    pub resolution: HistoryResolution,
    /// The node's sockets by state and the port groups beyond the top N; `null` while no
    /// socket source can be read (see `sources`).
    #[serde(default)]
    pub socket_totals: Option<SocketTotals>,
    /// Listening sockets with their accept queues: the top N fullest first, then the other
    /// listeners of service ports (configured, busy or already charted), so a quiet
    /// service's queue keeps its history.
    #[serde(default)]
    pub listeners: Vec<ListenQueue>,
    /// Listening sockets left out of `listeners` by the bound.
    #[serde(default)]
    pub listeners_omitted: u64,
    /// The status of every node counter source.
    #[serde(default)]
    pub sources: Vec<SourceStatus>,
    /// The agent's own tokio runtime; `null` before the first sample.
    #[serde(default)]
    pub runtime: Option<RuntimeSeries>,
    /// Request and error rates per service: the traffic series the diagnosis and "what
    /// moved" judge, on the same axis. Kept per second only (15 minutes): empty in the
    /// per-minute history.
    #[serde(default)]
    pub traffic: Vec<ServiceTraffic>,
}

/// One service's traffic: requests and failed requests per second, from its SERVER spans and
/// access lines, each point the mean over the five seconds before it (as the diagnosis judges
/// them). `null` before the service's first request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceTraffic {
    /// The service.
    pub service: String,
    /// Requests per second.
    pub requests: Series,
    /// Failed requests (5xx, error spans) per second.
    pub errors: Series,
}
