//! The harnesses of the fuzz targets: one function per target, turning arbitrary bytes into
//! one call of the code under test and checking what must hold besides "no panic". The
//! fuzz targets (`fuzz_targets/`) call them under libFuzzer; each owning crate's
//! `fuzz_corpus` test includes the same files and replays the stored corpora on stable.

#[path = "../harness/cluster_snapshot.rs"]
pub mod cluster_snapshot;
#[path = "../harness/config.rs"]
pub mod config;
#[path = "../harness/counter_files.rs"]
pub mod counter_files;
#[path = "../harness/counters.rs"]
pub mod counters;
#[path = "../harness/log_lines.rs"]
pub mod log_lines;
#[path = "../harness/mask.rs"]
pub mod mask;
#[path = "../harness/otlp.rs"]
pub mod otlp;
#[path = "../harness/state.rs"]
pub mod state;
#[path = "../harness/tail_state.rs"]
pub mod tail_state;
