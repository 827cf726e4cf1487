//! What the engine answers: where an event went, the cluster list and one cluster's detail,
//! and what its bounds did.

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterId;
use crate::emergence::Emergence;
use crate::occurrence::EventSource;
use crate::template::TemplateId;

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
    /// Occurrences in traces that had already failed with another pattern (a retry that
    /// failed another way, a second call of the same request), by that pattern (its current
    /// id), most first: those failed requests are counted in both patterns. Whoever adds
    /// patterns up (an incident) subtracts them once. At most [`MAX_FAILED_BEFORE`] patterns
    /// per root are remembered; occurrences beyond are not listed.
    pub failed_before: Vec<(ClusterId, u64)>,
    /// Reports ever (log records and error spans), echoes included.
    pub reports: u64,
    /// Of `count`, the occurrences reported without a trace id, one per record. Beside
    /// occurrences counted by trace they are rarely failed requests: a line of no request
    /// (an exporter's, an accept loop's) whose innermost error is the same (see the unseen
    /// lab's close-wait fault: 41 lines `otlp export: Post …: socket: too many open files`
    /// in the pattern of 506 failed requests).
    pub untraced: u64,
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

/// A cluster's newest samples and ids ([`Engine::cluster_samples`](super::Engine::cluster_samples)).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSamples {
    /// Its current id.
    pub id: ClusterId,
    /// Ids it had before, as [`ClusterDetail::former_ids`].
    pub former_ids: Vec<ClusterId>,
    /// Its newest samples, newest first, as [`ClusterDetail::samples`].
    pub samples: Vec<Sample>,
    /// Occurrences per second, as [`ClusterDetail::per_second`]: when its current run began.
    pub per_second: Vec<(i64, u64)>,
}

/// A cluster's counts as its [`ClusterSummary`] has them ([`Engine::counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCounts {
    /// Its current id.
    pub id: ClusterId,
    /// As [`ClusterSummary::count`].
    pub count: u64,
    /// As [`ClusterSummary::untraced`].
    pub untraced: u64,
    /// As [`ClusterSummary::failed_before`].
    pub failed_before: Vec<(ClusterId, u64)>,
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
