//! faultline-clustering: turns a stream of error messages into a small, stable set of error
//! patterns.
//!
//! Two levels of grouping (see DESIGN.md, decision 2): a *template* is the exact masked shape of
//! a message; a *cluster* (error pattern) groups templates whose TF-IDF vectors DBSCAN puts
//! together, one root kind of error whatever the wrapper text, logger style or service. Ids of
//! both are content hashes, stable across nodes and restarts. This crate owns masking,
//! template mining, the cluster store and emergence detection; it knows nothing of files,
//! sockets or HTTP.
//!
//! Pipeline, one module per step: [`mask`] turns a message into its shape (variable parts
//! become `<*>`, kept as parameters); [`template`] maps shapes to templates in O(message
//! length) and generalises them online; [`root`] finds a message's innermost Go error;
//! [`cluster`] groups roots with TF-IDF vectors and DBSCAN (connected components of the
//! neighbour graph, checked against linfa-clustering);
//! [`alias`] keeps retired ids pointing at their successors;
//! [`emergence`] tells new and surging clusters with a Poisson test; [`occurrence`] folds the
//! reports of one failure (log lines, error spans, upstream echoes) into one count; [`engine`]
//! is the live, bounded, thread-safe store the agent feeds and queries; [`snapshot`] is its
//! versioned on-disk format (the agent writes it); [`batch`] is the `faultline cluster`
//! command's engine; [`config`] is the agent's `[clustering]` section.
//!
//! Wiring: build one `Arc<Engine>` from [`ClusteringConfig`] (or [`Engine::from_snapshot`] a
//! stored snapshot), call [`Engine::observe`] for every error-ish record, [`Engine::maintain`]
//! from a background task every few seconds, store [`Engine::snapshot`] periodically and at
//! shutdown, and answer the API from [`Engine::clusters`], [`Engine::cluster`],
//! [`Engine::emerging`] and [`Engine::counters`].

pub mod alias;
pub mod batch;
pub mod cluster;
pub mod config;
pub mod emergence;
pub mod engine;
pub mod mask;
pub mod occurrence;
pub mod root;
pub mod snapshot;
pub mod template;

pub use cluster::ClusterId;
pub use config::ClusteringConfig;
pub use engine::{
    ClusterDetail, ClusterQuery, ClusterSummary, Engine, EngineCounters, EngineCounts, ErrorEvent,
    Observation, RecordIds, Sample, TemplateSummary,
};
pub use occurrence::EventSource;
pub use template::TemplateId;
