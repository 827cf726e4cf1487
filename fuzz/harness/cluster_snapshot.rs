//! The cluster store's on-disk format: a stored snapshot (JSON, as inside the agent's
//! `state.json`) read ([`Snapshot`]) and restored ([`Engine::from_snapshot`]); a restored
//! engine is then used (events observed, maintained, queried) and its own snapshot must be
//! restorable in turn. A snapshot that contradicts itself must be refused with an error, never
//! half applied and never a panic.

use faultline_clustering::snapshot::Snapshot;
use faultline_clustering::{ClusterQuery, ClusteringConfig, Engine, ErrorEvent};

/// 2026-01-01T00:00:00Z, fixed so runs repeat.
const NOW: i64 = 1_767_225_600 * 1_000_000_000;

/// Runs one input. Panics (the fuzzer's finding) when an invariant above is broken.
pub fn run(data: &[u8]) {
    let Ok(snapshot) = serde_json::from_slice::<Snapshot>(data) else {
        return;
    };
    let config = ClusteringConfig {
        max_templates: 64,
        max_clusters: 16,
        ..ClusteringConfig::default()
    };
    let Ok(engine) = Engine::from_snapshot(snapshot, config.clone()) else {
        return;
    };
    let _ = engine.migration();
    for text in [
        "dial tcp 10.0.0.1:5432: connect: connection refused",
        "read tcp 10.0.0.2:443: read: connection reset by peer",
        "dial tcp 10.0.0.1:5432: connect: connection refused",
    ] {
        engine.observe(&ErrorEvent {
            text,
            service: Some("fuzz"),
            severity: "error",
            trace_id: None,
            span_id: None,
            time_unix_nanos: NOW,
            stack: None,
            frame: None,
        });
    }
    engine.maintain();
    for summary in engine.clusters(&ClusterQuery {
        now_unix_nanos: NOW,
        ..ClusterQuery::default()
    }) {
        let _ = engine.cluster(summary.id, NOW);
        let _ = engine.resolve_cluster(summary.id);
    }
    let _ = engine.emerging(NOW, 10);
    let _ = engine.counters();
    let json = serde_json::to_vec(&engine.snapshot()).expect("a snapshot serialises");
    let again: Snapshot = serde_json::from_slice(&json).expect("a snapshot reads back");
    if let Err(err) = Engine::from_snapshot(again, config) {
        panic!("a restored engine's own snapshot is refused: {err}");
    }
}
