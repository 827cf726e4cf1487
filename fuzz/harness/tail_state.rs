//! The tailer's on-disk format: stored tail offsets (JSON, as inside the agent's
//! `state.json`) read into a [`TailState`]. Whatever reads must write back to the same
//! state, so that a state that loaded once keeps loading across restarts.

use faultline_ingest::tail::TailState;

/// Runs one input. Panics (the fuzzer's finding) when a loaded state does not round-trip.
pub fn run(data: &[u8]) {
    let Ok(state) = serde_json::from_slice::<TailState>(data) else {
        return;
    };
    let json = serde_json::to_vec(&state).expect("a tail state serialises");
    let again: TailState = match serde_json::from_slice(&json) {
        Ok(again) => again,
        Err(err) => panic!(
            "a tail state that loaded does not load again: {err}: {}",
            String::from_utf8_lossy(&json)
        ),
    };
    assert_eq!(state, again, "a tail state changed through its file");
}
