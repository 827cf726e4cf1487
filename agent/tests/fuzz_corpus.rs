//! The fuzz corpora of the agent's targets (`fuzz/corpus/{config,state,counters,counter_files}`) replayed on stable
//! through the same harnesses the fuzz targets run (`fuzz/harness/`), so that the test
//! command covers every input the fuzzer kept, including those that once crashed.

use std::path::Path;

#[path = "../../fuzz/harness/config.rs"]
mod config;
#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
#[path = "../../fuzz/harness/counter_files.rs"]
mod counter_files;
#[path = "../../fuzz/harness/counters.rs"]
mod counters;
#[path = "../../fuzz/harness/state.rs"]
mod state;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn config_corpus() {
    corpus::replay(repo(), "config", config::run);
}

#[test]
fn state_corpus() {
    corpus::replay(repo(), "state", state::run);
}

#[test]
fn counters_corpus() {
    corpus::replay(repo(), "counters", counters::run);
}

#[test]
fn counter_files_corpus() {
    corpus::replay(repo(), "counter_files", counter_files::run);
}
