//! Masking and template extraction: error texts through the masker ([`mask`],
//! [`mask_display`]), the root finder ([`root_signature`]) and a live [`Engine`] (templates,
//! clusters, samples), then the engine's snapshot through its on-disk form and back.
//!
//! Input: UTF-8 (lossy) text; each line is one error event, the line after a line starting
//! with a tab is that event's stack. Besides not panicking: a non-blank message has a
//! non-empty root (the root finder promises it), the same text observed twice lands in the
//! same template, and the engine's snapshot reads back.

use faultline_clustering::mask::{mask, mask_display};
use faultline_clustering::root::root_signature;
use faultline_clustering::snapshot::Snapshot;
use faultline_clustering::{ClusterQuery, ClusteringConfig, Engine, ErrorEvent};

/// 2026-01-01T00:00:00Z, fixed so runs repeat.
const NOW: i64 = 1_767_225_600 * 1_000_000_000;
/// At most this many events per input (the fuzzer's inputs stay small anyway).
const MAX_EVENTS: usize = 64;

/// Runs one input. Panics (the fuzzer's finding) when an invariant above is broken.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let config = ClusteringConfig {
        max_templates: 64,
        max_clusters: 16,
        // Small enough that a fuzzer's inputs reach the cuts.
        max_message_bytes: 256,
        ..ClusteringConfig::default()
    };
    let engine = Engine::new(config.clone());
    let mut lines = text.lines().peekable();
    let mut events = 0;
    while let Some(line) = lines.next() {
        if events == MAX_EVENTS {
            break;
        }
        events += 1;
        let stack = lines.next_if(|next| next.starts_with('\t'));
        let _ = mask(line);
        let _ = mask_display(line);
        let root = root_signature(line);
        assert!(
            line.trim().is_empty() || !root.is_empty(),
            "empty root for {line:?}"
        );
        let event = ErrorEvent {
            text: line,
            service: Some("fuzz"),
            severity: "error",
            trace_id: None,
            span_id: None,
            time_unix_nanos: NOW + events as i64,
            stack,
            frame: stack.and_then(|s| s.lines().next()),
        };
        let first = engine.observe(&event);
        let again = engine.observe(&event);
        assert_eq!(
            first.template, again.template,
            "the same text went to two templates: {line:?}"
        );
    }
    engine.maintain();
    for summary in engine.clusters(&ClusterQuery {
        now_unix_nanos: NOW,
        ..ClusterQuery::default()
    }) {
        let _ = engine.cluster(summary.id, NOW);
    }
    let _ = engine.emerging(NOW, 10);
    let json = serde_json::to_vec(&engine.snapshot()).expect("a snapshot serialises");
    let snapshot: Snapshot = serde_json::from_slice(&json).expect("a snapshot reads back");
    if let Err(err) = Engine::from_snapshot(snapshot, config) {
        panic!("the engine's own snapshot is refused: {err}");
    }
}
