//! The fuzz corpora of the clustering targets (`fuzz/corpus/{mask,cluster_snapshot}`) replayed
//! on stable through the same harnesses the fuzz targets run (`fuzz/harness/`), so that the
//! test command covers every input the fuzzer kept, including those that once crashed.

use std::path::Path;

#[path = "../../fuzz/harness/cluster_snapshot.rs"]
mod cluster_snapshot;
#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
#[path = "../../fuzz/harness/mask.rs"]
mod mask;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn mask_corpus() {
    corpus::replay(repo(), "mask", mask::run);
}

#[test]
fn cluster_snapshot_corpus() {
    corpus::replay(repo(), "cluster_snapshot", cluster_snapshot::run);
}
