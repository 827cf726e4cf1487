//! Replaying a stored corpus on stable: every file of `fuzz/corpus/<target>/` through the
//! target's harness, each failure named by its file. Used by the owning crates' `fuzz_corpus`
//! tests (not by the fuzz targets).

use std::path::{Path, PathBuf};

/// Runs every file of `fuzz/corpus/<target>` (relative to the repository at `repo`) through
/// `run`; panics naming each file whose run panicked, or when the corpus is missing or empty.
pub fn replay(repo: &Path, target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let folder = repo.join("fuzz").join("corpus").join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(err) => panic!("cannot read the corpus {}: {err}", folder.display()),
    };
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus {} is empty",
        folder.display()
    );
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs of {target} panicked (rerun one with `cargo fuzz run {target} <file>`):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}
