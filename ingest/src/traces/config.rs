//! Bounds of the trace store. Every bound has a documented eviction policy (see `TraceStore`).

use serde::Deserialize;

/// Limits of the [`TraceStore`](super::TraceStore).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceStoreConfig {
    /// Most traces kept at once; when a new trace would exceed it, the trace that was created
    /// first is evicted (counted in `evicted_traces`).
    pub max_traces: usize,
    /// Most spans kept per trace; further spans of that trace are refused (reported to the
    /// sender as rejected in the OTLP partial-success answer, counted in `refused_spans`).
    pub max_spans_per_trace: usize,
    /// Most log records kept per trace; later ones are dropped (counted in `dropped_logs`).
    pub max_logs_per_trace: usize,
    /// Most spans held over all traces; beyond it the least recently touched other traces are
    /// evicted (`evicted_traces`). With `max_spans_per_trace` this bounds memory even when
    /// every trace is large.
    pub max_total_spans: usize,
    /// Most log records held over all traces; beyond it, as for spans.
    pub max_total_logs: usize,
    /// Most cluster ids remembered per trace and per span; later tags are ignored.
    pub max_clusters_per_trace: usize,
    /// Seconds a trace is kept after it was last touched (span or log added); older traces are
    /// expired (counted in `expired_traces`).
    pub retention_secs: u64,
}

impl Default for TraceStoreConfig {
    fn default() -> Self {
        TraceStoreConfig {
            max_traces: 100_000,
            max_spans_per_trace: 2_000,
            max_logs_per_trace: 1_000,
            max_total_spans: 1_000_000,
            max_total_logs: 500_000,
            max_clusters_per_trace: 32,
            retention_secs: 3_600,
        }
    }
}
