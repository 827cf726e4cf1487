//! The `[clustering]` section of the agent's configuration.

use serde::{Deserialize, Serialize};

/// Settings of the clustering engine; every key has a sound default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusteringConfig {
    /// Most exact message shapes (template keys) kept; past it new shapes go to "other".
    pub max_templates: usize,
    /// Most roots (kinds of innermost error) kept; clusters are groups of roots, so this
    /// bounds the clusters too. Past it new roots go to "other".
    pub max_clusters: usize,
    /// Sample messages kept per root (a cluster shows the samples of its roots).
    pub samples_per_cluster: usize,
    /// Distinct parameter values counted per root.
    pub top_values: usize,
    /// Longer messages are cut to this many bytes before clustering.
    pub max_message_bytes: usize,
    /// Words seen at one template position that make it a parameter.
    pub min_distinct_words: usize,
    /// DBSCAN tolerance (Euclidean distance of normalised TF-IDF vectors, 0..2).
    pub eps: f32,
    /// Length of the current window for emergence, in seconds.
    pub window_secs: u64,
    /// Length of the baseline before the window, in seconds.
    pub baseline_secs: u64,
    /// A cluster first seen in the window is *new* from this many events on.
    pub new_min_events: u64,
    /// A surge needs at least this ratio of current to baseline rate...
    pub surge_min_ratio: f64,
    /// ...and a Poisson tail probability below this.
    pub surge_max_p: f64,
    /// Minutes of per-minute counts kept per root (at least window + baseline).
    pub history_minutes: usize,
    /// Most (error kind, trace) pairs remembered to count one failure once however many
    /// log lines and error spans of its trace report it; the oldest pair leaves first.
    pub recent_traces: usize,
}

impl Default for ClusteringConfig {
    fn default() -> Self {
        ClusteringConfig {
            max_templates: 20_000,
            max_clusters: 2_000,
            samples_per_cluster: 5,
            top_values: 32,
            max_message_bytes: 16 * 1024,
            min_distinct_words: 5,
            eps: 0.8,
            window_secs: 300,
            baseline_secs: 3600,
            new_min_events: 5,
            surge_min_ratio: 3.0,
            surge_max_p: 1e-4,
            history_minutes: 90,
            // At 1,000 failed requests a second this holds 16 s of traces: longer than the
            // OpenTelemetry SDKs' default batch delay (5 s), after which a span's echo of a
            // log line arrives. About 100 bytes a pair, 1.6 MB in all.
            recent_traces: 16_384,
        }
    }
}
