//! faultline-clustering: turns a stream of error messages into a small, stable set of error
//! patterns.
//!
//! Two levels of grouping (see DESIGN.md, decision 2): a *template* is the exact masked shape of
//! a message; a *cluster* (error pattern) groups templates whose TF-IDF vectors DBSCAN puts
//! together, one root kind of error whatever the wrapper text, logger style or service. Ids of
//! both are content hashes, stable across nodes and restarts. This crate owns masking,
//! template mining, the cluster store and emergence detection; it knows nothing of files,
//! sockets or HTTP.

pub mod batch;
pub mod cluster;
pub mod config;
pub mod emergence;
pub mod engine;
pub mod mask;
pub mod root;
pub mod snapshot;
pub mod template;

pub use cluster::ClusterId;
pub use config::ClusteringConfig;
pub use engine::{
    ClusterDetail, ClusterQuery, ClusterSummary, Engine, EngineCounters, ErrorEvent, Observation,
    Sample, TemplateSummary,
};
pub use template::TemplateId;
