//! The agent's state file: bytes written as `state.json` into an empty data directory and
//! loaded as a start loads them ([`persist::load`] judged by [`persist::restore`]). Besides not
//! panicking: a file that cannot be used is set aside and the start goes on (never an error
//! that stops the agent); a file that is used is still there, and the state restored from it,
//! stored again, loads again with the same totals.

use faultline_agent::persist::{self, AgentState, STATE_FILE};
use faultline_clustering::ClusteringConfig;

/// Runs one input. Panics (the fuzzer's finding) when an invariant above is broken.
pub fn run(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(STATE_FILE);
    std::fs::write(&path, data).expect("write the state file");
    let config = ClusteringConfig {
        max_templates: 64,
        max_clusters: 16,
        ..ClusteringConfig::default()
    };
    let (restored, notes) =
        match persist::load(dir.path(), &mut |state| persist::restore(state, &config)) {
            Ok(loaded) => loaded,
            Err(err) => panic!("a state file stopped the start: {err:#}"),
        };
    let Some((tail, engine, totals)) = restored else {
        assert!(!path.exists(), "an unusable state file was left in place");
        assert!(
            !notes.is_empty(),
            "an unusable state file was set aside silently"
        );
        return;
    };
    assert!(path.exists(), "a used state file was moved: {notes:?}");
    let state = AgentState {
        tail,
        clustering: engine.snapshot(),
        totals,
    };
    if let Err(err) = persist::store(dir.path(), state) {
        panic!("a restored state cannot be stored: {err}");
    }
    let (again, notes) = persist::load(dir.path(), &mut |state| persist::restore(state, &config))
        .expect("the stored state loads");
    let again = again
        .unwrap_or_else(|| panic!("the state stored from a restored one is refused: {notes:?}"));
    assert_eq!(again.2, totals, "the totals changed through the file");
}
