//! The fuzz corpora of the ingest targets (`fuzz/corpus/{log_lines,otlp_json,otlp_protobuf,
//! tail_state}`) replayed on stable through the same harnesses the fuzz targets run
//! (`fuzz/harness/`), so that the test command covers every input the fuzzer kept, including
//! those that once crashed.

use std::path::Path;

#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
#[path = "../../fuzz/harness/log_lines.rs"]
mod log_lines;
#[path = "../../fuzz/harness/otlp.rs"]
mod otlp;
#[path = "../../fuzz/harness/tail_state.rs"]
mod tail_state;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn log_lines_corpus() {
    corpus::replay(repo(), "log_lines", log_lines::run);
}

#[test]
fn otlp_json_corpus() {
    corpus::replay(repo(), "otlp_json", |data| {
        otlp::run(otlp::Encoding::Json, data)
    });
}

#[test]
fn otlp_protobuf_corpus() {
    corpus::replay(repo(), "otlp_protobuf", |data| {
        otlp::run(otlp::Encoding::Protobuf, data)
    });
}

#[test]
fn tail_state_corpus() {
    corpus::replay(repo(), "tail_state", tail_state::run);
}
