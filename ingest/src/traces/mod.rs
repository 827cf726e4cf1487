//! The trace store and call chains.
//!
//! Spans received over OTLP and log records from every source are joined here on their trace
//! id (and span id), whichever arrives first. [`TraceStore`] owns that state and is bounded in
//! traces, spans and logs per trace, and time; [`TraceStore::call_chain`] turns one trace into
//! a [`CallChain`]: the span tree with logs under their spans, orphans flagged, services in call
//! order, the critical path and the [`ErrorOrigin`] — where culprit attribution
//! (`faultline_diagnosis::culprit`) says the error starts, with its first error log. Clusters found by the clustering engine
//! are tagged onto traces with [`TraceStore::tag_cluster`].
//!
//! This module does not receive anything itself (that is `otlp` and `tail`) and does not
//! cluster (that is `faultline-clustering`).

mod chain;
mod compact;
mod config;
mod slot_index;
mod span;
mod store;
mod traffic;

pub use chain::{
    trace_facts, CallChain, ChainNode, ErrorOrigin, CLUSTER_ID_ATTRIBUTE, MAX_TREE_DEPTH,
};
pub use config::TraceStoreConfig;
pub use span::{Span, SpanEvent, SpanKind, StatusCode};
pub use store::{
    InsertOutcome, TraceFilter, TraceStore, TraceStoreStats, TraceSummary, MAX_LISTENERS,
};
pub use traffic::{
    RequestSource, SavedServiceTraffic, ServiceTraffic, TrafficSeries, SECONDS as TRAFFIC_SECONDS,
};
