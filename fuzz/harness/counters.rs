//! The agent's counter history file: bytes written as `counters.json` into an empty data
//! directory and loaded into a fresh counter store as a start loads them
//! ([`counters::load`]; the format earlier versions wrote, still read at the first start of
//! an upgraded agent). Besides not panicking: a file that cannot be used is refused with a
//! note (the start goes on with an empty history); the restored
//! history keeps its axes in order with every series aligned to them; a sample recorded
//! after it follows on the same axes; and the history saved from it loads again.

use std::collections::BTreeMap;

use faultline_agent::persist::counters::{self, COUNTERS_FILE};
use faultline_ingest::counters::reader::CensusReading;
use faultline_ingest::counters::store::{HistoryBlock, NodeSample};
use faultline_ingest::counters::{CounterError, CounterStore, CountersConfig, SnapshotOptions};

/// "Now" of the start, fixed so that a run is reproducible (2026-12-05 22:13 UTC; the seeds
/// were saved shortly before it).
const NOW_UNIX_MS: i64 = 1_796_500_000_000;

/// Runs one input. Panics (the fuzzer's finding) when an invariant above is broken.
pub fn run(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(COUNTERS_FILE);
    std::fs::write(&path, data).expect("write the counter history file");
    let config = CountersConfig {
        history_seconds: 64,
        history_minutes: 32,
        max_series: 16,
        ..CountersConfig::default()
    };
    let store = CounterStore::new(&config);
    let notes = counters::load(dir.path(), &store, NOW_UNIX_MS);
    let restored = notes
        .iter()
        .any(|n| n.starts_with("restored the counter history"));
    if !restored {
        assert!(
            !notes.is_empty(),
            "an unusable history was refused silently"
        );
    }
    check_axes(&store, "restored");

    // The next sample follows the restored points on the same axes.
    sample_after_restore(&store, NOW_UNIX_MS + 1_000);
    check_axes(&store, "sampled after the restore");

    // What this history saves loads again.
    let written = match counters::save_format_1(dir.path(), &store, i64::MAX, NOW_UNIX_MS + 1_000) {
        Ok(bytes) => bytes,
        Err(err) => panic!("the restored history cannot be saved: {err}"),
    };
    assert!(written > 0);
    let again = CounterStore::new(&config);
    let notes = counters::load(dir.path(), &again, NOW_UNIX_MS + 2_000);
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("restored the counter history")),
        "the history saved from a restored one is refused: {notes:?}"
    );
    check_axes(&again, "saved and restored again");
}

/// The history's times never go backwards at both resolutions and every series has one point per
/// time.
/// Records one sample at `time_unix_ms` after a restore: the sockstat gauges read, the other
/// sources failing (the harnesses do not read the node).
pub(crate) fn sample_after_restore(store: &CounterStore, time_unix_ms: i64) {
    let sockstat = BTreeMap::from([("sockets used".to_owned(), 7), ("TCP inuse".to_owned(), 3)]);
    store.record_sample(NodeSample {
        time_unix_ms,
        sockets: CensusReading::of(Err(CounterError::Worker(
            "not read by the fuzz harness".into(),
        ))),
        sockstat: Ok(sockstat),
        protocol: Err(CounterError::Worker("not read by the fuzz harness".into())),
        processes: Vec::new(),
        agent_process: None,
        runtime: None,
        scrapes: Vec::new(),
    });
}

/// The history's times never go backwards at both resolutions and every series has one
/// point per time; the diagnosis' read of the latest points works. Returns the history.
pub(crate) fn check_axes(store: &CounterStore, when: &str) -> HistoryBlock {
    let snapshot = store.snapshot(&SnapshotOptions::default());
    let history = snapshot.history.expect("a history was asked for");
    for (name, view) in [("seconds", &history.seconds), ("minutes", &history.minutes)] {
        assert!(
            view.times_unix_ms.windows(2).all(|w| w[0] <= w[1]),
            "{when}: the {name} axis goes backwards: {:?}",
            view.times_unix_ms
        );
        for (key, points) in &view.series {
            assert_eq!(
                points.len(),
                view.times_unix_ms.len(),
                "{when}: {key:?} is not aligned with the {name} axis"
            );
        }
    }
    // The diagnosis reads the most recent points only.
    let _ = store.snapshot(&SnapshotOptions {
        max_points: 3,
        minutes: false,
        ..SnapshotOptions::default()
    });
    history
}
